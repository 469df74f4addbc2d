package api

import "testing"

// The events/memory part of the OpenAPI document merges cleanly and names
// every route of this area with its methods.
func TestOpenAPIEventsPaths(t *testing.T) {
	doc, err := LoadOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	paths := doc["paths"].(map[string]any)
	want := map[string][]string{
		"/workspaces/{id}/memory":              {"get", "post"},
		"/workspaces/{id}/memory/{key}":        {"get", "delete"},
		"/workspaces/{id}/memories":            {"get", "post"},
		"/workspaces/{id}/memories/{memoryId}": {"delete"},
		"/workspaces/{id}/events/stream":       {"get"},
		"/ws":                                  {"get"},
		"/events":                              {"get"},
		"/events/{workspaceId}":                {"get"},
	}
	for p, methods := range want {
		item, ok := paths[p].(map[string]any)
		if !ok {
			t.Fatalf("path %s missing", p)
		}
		for _, m := range methods {
			if _, ok := item[m]; !ok {
				t.Fatalf("%s %s missing", m, p)
			}
		}
	}
}
