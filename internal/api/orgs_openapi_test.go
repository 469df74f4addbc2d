package api

import "testing"

// The org/plugin routes are documented (until the router-wide check lands).
func TestOrgRoutesInOpenAPI(t *testing.T) {
	doc, err := LoadOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	paths := doc["paths"].(map[string]any)
	for path, methods := range map[string][]string{
		"/org/templates": {"get"}, "/org/import": {"post"}, "/plugins": {"get"},
		"/workspaces/{id}/plugins": {"get", "post"}, "/workspaces/{id}/plugins/{name}": {"delete"},
		"/orgs/{id}/plugins/allowlist": {"get", "put"},
	} {
		ops, ok := paths[path].(map[string]any)
		if !ok {
			t.Errorf("%s missing", path)
			continue
		}
		for _, m := range methods {
			if _, ok := ops[m]; !ok {
				t.Errorf("%s %s missing", m, path)
			}
		}
	}
}
