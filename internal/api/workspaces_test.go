package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/apptest"
)

// startWS boots a server with the test defaults (no provisioner).
func startWS(t *testing.T, env ...string) *apptest.Instance {
	t.Helper()
	m := map[string]string{}
	for i := 0; i+1 < len(env); i += 2 {
		m[env[i]] = env[i+1]
	}
	return apptest.Start(t, apptest.Options{Env: m})
}

func wantStatus(t *testing.T, r *apptest.Response, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
}

// createExternal creates an external workspace through the API and returns
// its id and connection token.
func createExternal(t *testing.T, in *apptest.Instance, name string, parent *uuid.UUID) (uuid.UUID, string) {
	t.Helper()
	body := map[string]any{"name": name, "external": true}
	if parent != nil {
		body["parent_id"] = parent.String()
	}
	r := in.Do("POST", "/workspaces", in.Admin, body)
	wantStatus(t, r, http.StatusCreated)
	var out struct {
		ID         uuid.UUID `json:"id"`
		Status     string    `json:"status"`
		Connection struct {
			AuthToken   string    `json:"auth_token"`
			PlatformURL string    `json:"platform_url"`
			WorkspaceID uuid.UUID `json:"workspace_id"`
		} `json:"connection"`
	}
	r.JSON(t, &out)
	if out.Status != "awaiting_agent" || out.Connection.AuthToken == "" || out.Connection.WorkspaceID != out.ID ||
		!strings.HasPrefix(out.Connection.PlatformURL, "http://") {
		t.Fatalf("external create: %s", r.Body)
	}
	return out.ID, out.Connection.AuthToken
}

func TestWorkspaceCreateGetList(t *testing.T) {
	in := startWS(t)
	root, tok := createExternal(t, in, "root", nil)
	child, _ := createExternal(t, in, "child", &root)

	r := in.Do("GET", "/workspaces/"+child.String(), tok, nil)
	wantStatus(t, r, http.StatusForbidden) // root's token is not child's

	r = in.Do("GET", "/workspaces/"+root.String(), tok, nil)
	wantStatus(t, r, http.StatusOK)
	m := r.Map(t)
	if m["name"] != "root" || m["tier"] != float64(2) || m["runtime"] != "molecule-agent" || m["workspace_access"] != "none" {
		t.Fatalf("defaults: %s", r.Body)
	}
	for _, k := range []string{"budget_limit", "monthly_spend", "last_sample_error", "instance_id", "connection"} {
		if _, ok := m[k]; ok {
			t.Errorf("workspace token sees %q: %s", k, r.Body)
		}
	}
	r = in.Do("GET", "/workspaces/"+root.String(), in.Admin, nil)
	m = r.Map(t)
	for _, k := range []string{"last_sample_error", "instance_id"} {
		if _, ok := m[k]; !ok {
			t.Errorf("admin misses %q: %s", k, r.Body)
		}
	}
	for _, k := range []string{"budget_limit", "monthly_spend"} {
		if _, ok := m[k]; ok {
			t.Errorf("admin sees billing field %q", k)
		}
	}

	r = in.Do("GET", "/workspaces", in.Admin, nil)
	wantStatus(t, r, http.StatusOK)
	var list []map[string]any
	r.JSON(t, &list)
	if len(list) != 2 || list[1]["parent_id"] != root.String() {
		t.Fatalf("list: %s", r.Body)
	}
	if _, ok := list[0]["x"]; !ok {
		t.Fatalf("list lacks x: %s", r.Body)
	}
	_ = context.Background()
}
