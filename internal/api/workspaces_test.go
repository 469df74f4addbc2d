package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/apptest"
	"github.com/moleculesai/molecule/internal/apptest/kit"
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

func TestWorkspaceCreateBadInput(t *testing.T) {
	in := startWS(t)
	parent, _ := createExternal(t, in, "p", nil)
	big := `{"name":"` + strings.Repeat("a", 2<<20) + `"}`
	cases := []struct {
		name   string
		body   any
		status int
	}{
		{"malformed", `{"name":`, 400},
		{"not an object", `[1]`, 400},
		{"empty body", ``, 400},
		{"wrong type name", `{"name":5,"external":true}`, 400},
		{"wrong type tier", `{"name":"a","tier":"two","external":true}`, 400},
		{"fractional tier", `{"name":"a","tier":2.5,"external":true}`, 400},
		{"missing name", `{"external":true}`, 400},
		{"blank name", `{"name":"   ","external":true}`, 400},
		{"long name", map[string]any{"name": strings.Repeat("n", 129), "external": true}, 400},
		{"NUL name", map[string]any{"name": "a\x00b", "external": true}, 400},
		{"NUL role", map[string]any{"name": "a", "role": "r\x00", "external": true}, 400},
		{"tier 0", map[string]any{"name": "a", "tier": 0, "external": true}, 400},
		{"tier 5", map[string]any{"name": "a", "tier": 5, "external": true}, 400},
		{"bad access", map[string]any{"name": "a", "workspace_access": "all", "external": true}, 400},
		{"bad parent uuid", map[string]any{"name": "a", "parent_id": "nope", "external": true}, 400},
		{"parent uuid with NUL", map[string]any{"name": "a", "parent_id": "\x00", "external": true}, 400},
		{"unknown parent", map[string]any{"name": "a", "parent_id": uuid.NewString(), "external": true}, 404},
		{"negative budget", map[string]any{"name": "a", "budget_limit": -1, "external": true}, 400},
		{"bad secret name", map[string]any{"name": "a", "secrets": map[string]string{"lower": "x"}, "external": true}, 400},
		{"reserved secret", map[string]any{"name": "a", "secrets": map[string]string{"PLATFORM_URL": "x"}, "external": true}, 400},
		{"secrets wrong type", `{"name":"a","external":true,"secrets":{"A":1}}`, 400},
		{"url not external", map[string]any{"name": "a", "url": "http://10.0.0.1:8000", "external": false}, 400},
		{"url bad scheme", map[string]any{"name": "a", "url": "ftp://x", "external": true}, 400},
		{"url metadata", map[string]any{"name": "a", "url": "http://169.254.169.254/", "external": true}, 400},
		{"relative workspace_dir", map[string]any{"name": "a", "workspace_dir": "tmp/x", "external": true}, 400},
		{"bad runtime", map[string]any{"name": "a", "runtime": "Bad Runtime", "external": true}, 400},
		{"over the cap", big, 413},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := in.Do("POST", "/workspaces", in.Admin, tc.body)
			wantStatus(t, r, tc.status)
		})
	}
	// Nothing of the above was written.
	r := in.Do("GET", "/workspaces", in.Admin, nil)
	var list []map[string]any
	r.JSON(t, &list)
	if len(list) != 1 || list[0]["id"] != parent.String() {
		t.Fatalf("refused creates wrote rows: %s", r.Body)
	}
}

func TestWorkspaceCreateNoBackend(t *testing.T) {
	in := startWS(t)
	r := in.Do("POST", "/workspaces", in.Admin, map[string]any{"name": "needs-docker"})
	wantStatus(t, r, http.StatusServiceUnavailable)
	if !strings.Contains(r.Map(t)["error"].(string), "MOLECULE_PROVISIONER") {
		t.Fatalf("unclear 503: %s", r.Body)
	}
	if n := kit.Count(t, in.App.Store.DB, "workspaces", ""); n != 0 {
		t.Fatalf("503 wrote %d rows", n)
	}
}

func TestWorkspaceCreateExternalWithURLAndSecrets(t *testing.T) {
	in := startWS(t)
	r := in.Do("POST", "/workspaces", in.Admin, map[string]any{
		"name": "ext", "external": true, "url": "http://10.1.2.3:8000", "role": "researcher", "tier": 3,
		"workspace_access": "read_only", "budget_limit": 500, "canvas": map[string]any{"x": 10.5, "y": -3},
		"secrets": map[string]string{"API_KEY": "s3cr3t-value", "OTHER": "v\x00with nul"},
	})
	wantStatus(t, r, http.StatusCreated)
	if strings.Contains(string(r.Body), "s3cr3t") {
		t.Fatal("secret value in response")
	}
	m := r.Map(t)
	if m["status"] != "online" || m["x"] != 10.5 || m["y"] != float64(-3) || m["tier"] != float64(3) || m["connection"] != nil {
		t.Fatalf("create: %s", r.Body)
	}
	id := m["id"].(string)
	var sealed []byte
	n := kit.Count(t, in.App.Store.DB, "workspace_secrets", "workspace_id = $1", id)
	_ = in.App.Store.DB.QueryRow(`SELECT sealed FROM workspace_secrets WHERE workspace_id = $1 AND key = 'API_KEY'`, id).Scan(&sealed)
	if n != 2 || len(sealed) == 0 || bytes.Contains(sealed, []byte("s3cr3t")) {
		t.Fatalf("secrets stored: %d", n)
	}
	var budget int64
	_ = in.App.Store.DB.QueryRow(`SELECT budget_limit FROM workspaces WHERE id = $1`, id).Scan(&budget)
	if budget != 500 {
		t.Fatalf("budget_limit %d", budget)
	}
	r = in.Do("GET", "/workspaces/"+id+"/secrets", in.Admin, nil)
	wantStatus(t, r, 200)
	if !strings.Contains(string(r.Body), `"key":"API_KEY","scope":"workspace"`) || strings.Contains(string(r.Body), "s3cr3t") {
		t.Fatalf("secret keys: %s", r.Body)
	}
}

// A secret that fails to store rolls back the workspace row: one transaction.
func TestWorkspaceCreateIsOneTransaction(t *testing.T) {
	in := startWS(t)
	if _, err := in.App.Store.DB.Exec(`ALTER TABLE workspace_secrets ADD CONSTRAINT test_no_fail CHECK (key <> 'FAIL_ME')`); err != nil {
		t.Fatal(err)
	}
	r := in.Do("POST", "/workspaces", in.Admin, map[string]any{"name": "atomic", "external": true,
		"secrets": map[string]string{"AAA_FIRST": "1", "FAIL_ME": "2", "ZZZ_LAST": "3"}})
	wantStatus(t, r, http.StatusInternalServerError)
	m := r.Map(t)
	if m["error"] != "internal error" || m["request_id"] == "" || strings.Contains(string(r.Body), "test_no_fail") {
		t.Fatalf("500 not opaque: %s", r.Body)
	}
	for _, table := range []string{"workspaces", "workspace_secrets", "auth_tokens"} {
		if n := kit.Count(t, in.App.Store.DB, table, ""); n != 0 {
			t.Fatalf("%s has %d rows after a failed create", table, n)
		}
	}
}

func TestWorkspacePatch(t *testing.T) {
	in := startWS(t)
	a, tokA := createExternal(t, in, "a", nil)
	b, _ := createExternal(t, in, "b", &a)
	c, _ := createExternal(t, in, "c", &b)
	path := "/workspaces/" + a.String()

	// Canvas fields with its own token.
	r := in.Do("PATCH", path, tokA, map[string]any{"name": "renamed", "x": 5, "y": 6, "collapsed": true, "role": "lead"})
	wantStatus(t, r, 200)
	m := r.Map(t)
	if m["name"] != "renamed" || m["x"] != float64(5) || m["collapsed"] != true || m["needs_restart"] != false {
		t.Fatalf("patch: %s", r.Body)
	}
	// Sensitive fields: 403 for the workspace token, each of them.
	for _, f := range []map[string]any{{"tier": 3}, {"parent_id": nil}, {"runtime": "x"}, {"workspace_dir": "/x"},
		{"workspace_access": "read_write"}, {"max_concurrent_tasks": 2}} {
		wantStatus(t, in.Do("PATCH", path, tokA, f), 403)
	}
	// Billing fields point at /budget.
	for _, f := range []map[string]any{{"budget_limit": 5}, {"budget_limit": nil}, {"monthly_spend": 0}} {
		r = in.Do("PATCH", path, in.Admin, f)
		wantStatus(t, r, 400)
		if !strings.Contains(string(r.Body), "/budget") {
			t.Fatalf("budget 400 does not point at /budget: %s", r.Body)
		}
	}
	// Cycles: a under its grandchild c, under itself.
	wantStatus(t, in.Do("PATCH", path, in.Admin, map[string]any{"parent_id": c.String()}), 400)
	wantStatus(t, in.Do("PATCH", path, in.Admin, map[string]any{"parent_id": a.String()}), 400)
	wantStatus(t, in.Do("PATCH", path, in.Admin, map[string]any{"parent_id": uuid.NewString()}), 404)
	wantStatus(t, in.Do("PATCH", path, in.Admin, map[string]any{"parent_id": "not-a-uuid"}), 400)
	wantStatus(t, in.Do("PATCH", path, in.Admin, map[string]any{"parent_id": 12}), 400)
	// Moving c to the root and back is fine.
	r = in.Do("PATCH", "/workspaces/"+c.String(), in.Admin, map[string]any{"parent_id": nil})
	wantStatus(t, r, 200)
	if r.Map(t)["parent_id"] != nil {
		t.Fatalf("not a root: %s", r.Body)
	}
	wantStatus(t, in.Do("PATCH", "/workspaces/"+c.String(), in.Admin, map[string]any{"parent_id": a.String()}), 200)
	// needs_restart on tier/runtime/workspace_dir.
	r = in.Do("PATCH", path, in.Admin, map[string]any{"tier": 4, "workspace_access": "read_write"})
	wantStatus(t, r, 200)
	if m := r.Map(t); m["needs_restart"] != true || m["tier"] != float64(4) {
		t.Fatalf("needs_restart: %s", r.Body)
	}
	// Bad input.
	for _, body := range []any{`{`, `{"name":1}`, map[string]any{"name": ""}, map[string]any{"name": "a\x00"},
		map[string]any{"tier": 9}, map[string]any{"workspace_access": "x"}, map[string]any{"max_concurrent_tasks": 0},
		map[string]any{"workspace_dir": "rel"}, `{"x":"left"}`} {
		if r := in.Do("PATCH", path, in.Admin, body); r.Status != 400 {
			t.Errorf("PATCH %v: %d %s", body, r.Status, r.Body)
		}
	}
	wantStatus(t, in.Do("PATCH", "/workspaces/"+uuid.NewString(), in.Admin, map[string]any{"name": "x"}), 404)
	wantStatus(t, in.Do("PATCH", "/workspaces/bad", in.Admin, map[string]any{"name": "x"}), 400)
}

func TestWorkspaceDelete(t *testing.T) {
	in := startWS(t)
	a, tokA := createExternal(t, in, "a", nil)
	b, tokB := createExternal(t, in, "b", &a)
	_, _ = createExternal(t, in, "c", &b)
	other, _ := createExternal(t, in, "other", nil)

	wantStatus(t, in.Do("DELETE", "/workspaces/"+a.String(), tokA, nil), 403) // admin only
	r := in.Do("DELETE", "/workspaces/"+a.String(), in.Admin, nil)
	wantStatus(t, r, http.StatusConflict)
	if m := r.Map(t); m["code"] != "confirmation_required" || m["children"] != float64(1) {
		t.Fatalf("409: %s", r.Body)
	}
	wantStatus(t, in.Do("DELETE", "/workspaces/"+a.String()+"?confirm=maybe", in.Admin, nil), 400)
	wantStatus(t, in.Do("GET", "/workspaces/"+b.String(), tokB, nil), 200)

	r = in.Do("DELETE", "/workspaces/"+a.String()+"?confirm=true", in.Admin, nil)
	wantStatus(t, r, 200)
	if m := r.Map(t); m["status"] != "removed" || m["cascade_deleted"] != float64(2) {
		t.Fatalf("delete: %s", r.Body)
	}
	// Tokens revoked at once (no cache window on this replica).
	wantStatus(t, in.Do("GET", "/workspaces/"+b.String(), tokB, nil), 401)
	wantStatus(t, in.Do("GET", "/workspaces/"+a.String(), in.Admin, nil), 404)
	wantStatus(t, in.Do("DELETE", "/workspaces/"+a.String(), in.Admin, nil), 404)
	r = in.Do("GET", "/workspaces", in.Admin, nil)
	var list []map[string]any
	r.JSON(t, &list)
	if len(list) != 1 || list[0]["id"] != other.String() {
		t.Fatalf("list after delete: %s", r.Body)
	}
	if live := kit.Count(t, in.App.Store.DB, "auth_tokens", "revoked_at IS NULL AND workspace_id <> $1", other); live != 0 {
		t.Fatalf("%d tokens of removed workspaces still live", live)
	}
	kit.Eventually(t, "WORKSPACE_REMOVED", func() bool {
		ev := kit.EventTypes(t, in.App.Store.DB, b)
		return len(ev) > 0 && ev[len(ev)-1] == "WORKSPACE_REMOVED"
	})
	// A leaf needs no confirmation.
	wantStatus(t, in.Do("DELETE", "/workspaces/"+other.String(), in.Admin, nil), 200)
	wantStatus(t, in.Do("DELETE", "/workspaces/nope", in.Admin, nil), 400)
}

func TestWorkspaceTokens(t *testing.T) {
	in := startWS(t)
	a, tokA := createExternal(t, in, "a", nil)
	b, tokB := createExternal(t, in, "b", nil)
	base := "/workspaces/" + a.String() + "/tokens"

	r := in.Do("POST", base, tokA, map[string]any{"name": "ci"})
	wantStatus(t, r, 201)
	var created struct {
		ID        uuid.UUID `json:"id"`
		Prefix    string    `json:"prefix"`
		AuthToken string    `json:"auth_token"`
	}
	r.JSON(t, &created)
	if len(created.AuthToken) != 43 || created.Prefix != created.AuthToken[:8] {
		t.Fatalf("token: %s", r.Body)
	}
	wantStatus(t, in.Do("GET", "/workspaces/"+a.String(), created.AuthToken, nil), 200)
	wantStatus(t, in.Do("POST", base, in.Admin, nil), 201) // body optional

	r = in.Do("GET", base+"?limit=2", in.Admin, nil)
	wantStatus(t, r, 200)
	var list struct {
		Tokens []map[string]any `json:"tokens"`
		Total  int              `json:"total"`
	}
	r.JSON(t, &list)
	if list.Total != 3 || len(list.Tokens) != 2 || strings.Contains(string(r.Body), created.AuthToken) {
		t.Fatalf("list: %s", r.Body)
	}
	for _, q := range []string{"?limit=-1", "?offset=x", "?limit=abc"} {
		wantStatus(t, in.Do("GET", base+q, in.Admin, nil), 400)
	}
	// Another workspace's token id is a 404 here; b's token cannot touch a.
	var bTok uuid.UUID
	_ = in.App.Store.DB.QueryRow(`SELECT id FROM auth_tokens WHERE workspace_id = $1`, b).Scan(&bTok)
	wantStatus(t, in.Do("DELETE", base+"/"+bTok.String(), in.Admin, nil), 404)
	wantStatus(t, in.Do("DELETE", base+"/"+created.ID.String(), tokB, nil), 403)
	wantStatus(t, in.Do("DELETE", base+"/bad", in.Admin, nil), 400)
	wantStatus(t, in.Do("DELETE", base+"/"+created.ID.String(), tokA, nil), 200)
	wantStatus(t, in.Do("GET", "/workspaces/"+a.String(), created.AuthToken, nil), 401)
	wantStatus(t, in.Do("DELETE", base+"/"+created.ID.String(), tokA, nil), 404)
	wantStatus(t, in.Do("POST", base, tokA, `{"name":`), 400)
	wantStatus(t, in.Do("POST", base, tokA, map[string]any{"name": "a\x00"}), 400)

	// At most 50 live: the connection token and one more are live now.
	for i := 0; i < 48; i++ {
		wantStatus(t, in.Do("POST", base, in.Admin, nil), 201)
	}
	r = in.Do("POST", base, in.Admin, nil)
	wantStatus(t, r, 409)
}

func TestSecretsAPI(t *testing.T) {
	in := startWS(t)
	a, tokA := createExternal(t, in, "a", nil)
	_, tokB := createExternal(t, in, "b", nil)
	base := "/workspaces/" + a.String() + "/secrets"

	wantStatus(t, in.Do("PUT", "/settings/secrets", in.Admin, map[string]any{"key": "SHARED", "value": "global-v"}), 200)
	wantStatus(t, in.Do("PUT", "/settings/secrets", in.Admin, map[string]any{"key": "ONLY_GLOBAL", "value": "g"}), 200)
	wantStatus(t, in.Do("PUT", "/settings/secrets", tokA, map[string]any{"key": "X", "value": "g"}), 403)
	r := in.Do("PUT", base, tokA, map[string]any{"key": "SHARED", "value": "ws-value-123"})
	wantStatus(t, r, 200)
	if strings.Contains(string(r.Body), "ws-value-123") {
		t.Fatal("value echoed")
	}
	wantStatus(t, in.Do("PUT", base, tokA, map[string]any{"key": "SHARED", "value": "ws-value-456"}), 200) // upsert
	r = in.Do("GET", base, tokA, nil)
	wantStatus(t, r, 200)
	var got struct {
		Secrets []struct{ Key, Scope string } `json:"secrets"`
	}
	r.JSON(t, &got)
	if len(got.Secrets) != 2 || got.Secrets[0].Key != "ONLY_GLOBAL" || got.Secrets[0].Scope != "global" ||
		got.Secrets[1].Key != "SHARED" || got.Secrets[1].Scope != "workspace" || strings.Contains(string(r.Body), "value") {
		t.Fatalf("merged keys: %s", r.Body)
	}
	// The sealed value opens only as this workspace's SHARED.
	var sealed []byte
	_ = in.App.Store.DB.QueryRow(`SELECT sealed FROM workspace_secrets WHERE workspace_id = $1 AND key = 'SHARED'`, a).Scan(&sealed)
	if plain, err := in.App.Keyring.Open(sealed, a.String(), "SHARED"); err != nil || string(plain) != "ws-value-456" {
		t.Fatalf("open: %q %v", plain, err)
	}
	if _, err := in.App.Keyring.Open(sealed, "global", "SHARED"); err == nil {
		t.Fatal("a workspace ciphertext opened as a global one")
	}
	wantStatus(t, in.Do("GET", base, tokB, nil), 403)
	for _, body := range []any{`{`, `{"key":1,"value":"x"}`, map[string]any{"key": "lower", "value": "x"},
		map[string]any{"key": "PATH", "value": "x"}, map[string]any{"key": "MOLECULE_X", "value": "x"},
		map[string]any{"key": "OK"}, map[string]any{"key": "OK", "value": 5},
		map[string]any{"key": "OK", "value": strings.Repeat("v", 70000)}} {
		if r := in.Do("PUT", base, tokA, body); r.Status != 400 {
			t.Errorf("PUT %v: %d %s", body, r.Status, r.Body)
		}
	}
	wantStatus(t, in.Do("PUT", base, tokA, map[string]any{"key": "NUL_OK", "value": "a\x00b"}), 200)
	wantStatus(t, in.Do("DELETE", base+"/SHARED", tokA, nil), 200)
	wantStatus(t, in.Do("DELETE", base+"/SHARED", tokA, nil), 404)
	wantStatus(t, in.Do("DELETE", base+"/lower", tokA, nil), 400)
	wantStatus(t, in.Do("DELETE", "/settings/secrets/SHARED", in.Admin, nil), 200)
	wantStatus(t, in.Do("DELETE", "/settings/secrets/SHARED", in.Admin, nil), 404)
	wantStatus(t, in.Do("DELETE", "/settings/secrets/SHARED", tokA, nil), 403)
	r = in.Do("GET", "/settings/secrets", in.Admin, nil)
	wantStatus(t, r, 200)
	if !strings.Contains(string(r.Body), `"ONLY_GLOBAL"`) || strings.Contains(string(r.Body), `"g"`) {
		t.Fatalf("global list: %s", r.Body)
	}
	wantStatus(t, in.Do("GET", "/workspaces/"+uuid.NewString()+"/secrets", in.Admin, nil), 404)
}

// Two concurrent moves that would each be fine alone but together form a
// cycle: exactly one wins.
func TestWorkspacePatchConcurrentCycle(t *testing.T) {
	in := startWS(t)
	for round := 0; round < 5; round++ {
		a, _ := createExternal(t, in, "a", nil)
		b, _ := createExternal(t, in, "b", nil)
		codes := make(chan int, 2)
		for _, pair := range [][2]uuid.UUID{{a, b}, {b, a}} {
			go func(child, parent uuid.UUID) {
				r := in.Do("PATCH", "/workspaces/"+child.String(), in.Admin, map[string]any{"parent_id": parent.String()})
				codes <- r.Status
			}(pair[0], pair[1])
		}
		c1, c2 := <-codes, <-codes
		if !(c1 == 200 && c2 == 400 || c1 == 400 && c2 == 200) {
			t.Fatalf("round %d: statuses %d and %d", round, c1, c2)
		}
	}
}

// A PATCH is announced live (WORKSPACE_UPDATED), with "moved" when the
// parent changed, so canvases redraw and WebSocket filters refresh.
func TestPatchBroadcastsUpdate(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	parent, _ := in.CreateWorkspaceRow("parent", nil)
	id, tok := in.CreateWorkspaceRow("child", nil)
	sub := in.App.Hub.SubscribeWorkspace(id, 16)
	defer sub.Close()
	wantStatus(t, in.Do("PATCH", "/workspaces/"+id.String(), tok, map[string]any{"name": "renamed", "x": 3}), 200)
	wantStatus(t, in.Do("PATCH", "/workspaces/"+id.String(), in.Admin, map[string]any{"parent_id": parent.String()}), 200)
	var got []map[string]any
	for len(got) < 2 {
		select {
		case ev := <-sub.C:
			if ev.Type != "WORKSPACE_UPDATED" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal(ev.Payload, &m); err != nil {
				t.Fatal(err)
			}
			got = append(got, m)
		case <-time.After(5 * time.Second):
			t.Fatalf("got %d WORKSPACE_UPDATED events, want 2", len(got))
		}
	}
	if got[0]["name"] != "renamed" || got[0]["moved"] != false || got[1]["moved"] != true || got[1]["parent_id"] != parent.String() {
		t.Fatalf("payloads: %v", got)
	}
}

// Every status a workspace starts in is announced (§2, §10): an external
// workspace without a URL records WORKSPACE_AWAITING_AGENT, and its first
// registration WORKSPACE_ONLINE.
func TestStatusEventsFromCreateToOnline(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	id, tok := createExternal(t, in, "ext", nil)
	if got := kit.EventTypes(t, in.App.Store.DB, id); len(got) != 1 || got[0] != "WORKSPACE_AWAITING_AGENT" {
		t.Fatalf("events after create: %v", got)
	}
	wantStatus(t, in.Do("POST", "/registry/register", tok, map[string]any{"id": id.String(), "url": "http://127.0.0.1:9/"}), 200)
	if got := kit.EventTypes(t, in.App.Store.DB, id); len(got) != 2 || got[1] != "WORKSPACE_ONLINE" {
		t.Fatalf("events after register: %v", got)
	}
}
