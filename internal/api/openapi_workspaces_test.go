package api_test

import (
	"testing"

	"github.com/moleculesai/molecule/internal/api"
)

// Every route of this area is in the OpenAPI document.
func TestOpenAPIWorkspacesPaths(t *testing.T) {
	doc, err := api.LoadOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	paths := doc["paths"].(map[string]any)
	for path, methods := range map[string][]string{
		"/workspaces":                       {"get", "post"},
		"/workspaces/{id}":                  {"get", "patch", "delete"},
		"/workspaces/{id}/restart":          {"post"},
		"/workspaces/{id}/pause":            {"post"},
		"/workspaces/{id}/resume":           {"post"},
		"/workspaces/{id}/tokens":           {"get", "post"},
		"/workspaces/{id}/tokens/{tokenId}": {"delete"},
		"/workspaces/{id}/secrets":          {"get", "put"},
		"/workspaces/{id}/secrets/{key}":    {"delete"},
		"/settings/secrets":                 {"get", "put"},
		"/settings/secrets/{key}":           {"delete"},
		"/registry/register":                {"post"},
		"/registry/heartbeat":               {"post"},
		"/registry/update-card":             {"post"},
		"/registry/discover/{id}":           {"get"},
		"/registry/{id}/peers":              {"get"},
		"/registry/check-access":            {"post"},
	} {
		p, ok := paths[path].(map[string]any)
		if !ok {
			t.Errorf("%s missing", path)
			continue
		}
		for _, m := range methods {
			if _, ok := p[m]; !ok {
				t.Errorf("%s %s missing", m, path)
			}
		}
	}
}
