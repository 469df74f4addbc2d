package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/apptest"
)

// principalSet holds one credential of every kind (§1).
type principalSet struct {
	orgToken, revokedOrg, cookie, tokA, tokB string
	a, b                                     uuid.UUID
}

// expectation per principal: "ok" means the request passed auth (any
// status but 401/403); otherwise the exact status.
type authRow struct {
	method, path string
	body         any
	// who passes besides admin principals: "a" (token of :id), "ab" (both
	// workspace tokens), "agent" (only the token of :id; admins 403).
	who string
}

func setupPrincipals(t *testing.T, in *apptest.Instance) principalSet {
	t.Helper()
	var p principalSet
	p.a, p.tokA = createExternal(t, in, "a", nil)
	p.b, p.tokB = createExternal(t, in, "b", nil)
	r := in.Do("POST", "/org/tokens", in.Admin, map[string]any{"name": "ci"})
	wantStatus(t, r, 201)
	p.orgToken = r.Map(t)["auth_token"].(string)
	r = in.Do("POST", "/org/tokens", in.Admin, map[string]any{"name": "old"})
	m := r.Map(t)
	p.revokedOrg = m["auth_token"].(string)
	wantStatus(t, in.Do("DELETE", "/org/tokens/"+m["id"].(string), in.Admin, nil), 200)
	r = in.Do("POST", "/auth/session", "", map[string]any{"token": in.Admin})
	wantStatus(t, r, 201)
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == "molecule_session" {
			p.cookie = c.Value
		}
	}
	if p.cookie == "" {
		t.Fatal("no session cookie")
	}
	return p
}

func TestWorkspacesAuthMatrix(t *testing.T) {
	in := startWS(t)
	p := setupPrincipals(t, in)
	A := "/workspaces/" + p.a.String()
	rows := []authRow{
		{"POST", "/workspaces", map[string]any{"name": "m", "external": true}, "admin"},
		{"GET", "/workspaces", nil, "admin"},
		{"GET", A, nil, "a"},
		{"PATCH", A, map[string]any{"x": 1}, "a"},
		{"DELETE", "/workspaces/{fresh}", nil, "admin"},
		{"POST", A + "/restart", nil, "a"},
		{"POST", A + "/pause", nil, "a"},
		{"POST", A + "/resume", nil, "a"},
		{"GET", A + "/tokens", nil, "a"},
		{"POST", A + "/tokens", nil, "a"},
		{"DELETE", A + "/tokens/" + uuid.NewString(), nil, "a"},
		{"GET", A + "/secrets", nil, "a"},
		{"PUT", A + "/secrets", map[string]any{"key": "K", "value": "v"}, "a"},
		{"DELETE", A + "/secrets/K", nil, "a"},
		{"GET", "/settings/secrets", nil, "admin"},
		{"PUT", "/settings/secrets", map[string]any{"key": "G", "value": "v"}, "admin"},
		{"DELETE", "/settings/secrets/G", nil, "admin"},
		{"POST", "/registry/register", map[string]any{"id": p.a.String(), "url": "http://10.0.0.1:8000"}, "agent"},
		{"POST", "/registry/heartbeat", map[string]any{"workspace_id": p.a.String()}, "agent"},
		{"POST", "/registry/update-card", map[string]any{"workspace_id": p.a.String(), "agent_card": map[string]any{}}, "agent"},
		{"GET", "/registry/discover/" + p.a.String(), nil, "workspaces"},
		{"GET", "/registry/" + p.a.String() + "/peers", nil, "a"},
		{"POST", "/registry/check-access", map[string]any{"caller_id": p.a.String(), "target_id": p.b.String()}, "a"},
	}
	type principal struct {
		name    string
		bearer  string
		cookie  string
		isAdmin bool
		ws      string // "a", "b" or ""
		invalid bool
	}
	principals := []principal{
		{name: "none", invalid: true},
		{name: "garbage", bearer: "garbage-token", invalid: true},
		{name: "admin", bearer: in.Admin, isAdmin: true},
		{name: "org token", bearer: p.orgToken, isAdmin: true},
		{name: "revoked org token", bearer: p.revokedOrg, invalid: true},
		{name: "canvas cookie", cookie: p.cookie, isAdmin: true},
		{name: "token of :id", bearer: p.tokA, ws: "a"},
		{name: "token of another workspace", bearer: p.tokB, ws: "b"},
	}
	for _, row := range rows {
		for _, pr := range principals {
			want := "403"
			switch {
			case pr.invalid:
				want = "401"
			case pr.isAdmin && row.who != "agent" && row.who != "workspaces":
				want = "ok"
			case pr.ws == "a" && row.who != "admin":
				want = "ok"
			case pr.ws == "b" && row.who == "workspaces": // root ↔ root may discover
				want = "ok"
			}
			path := row.path
			if strings.Contains(path, "{fresh}") {
				id, _ := createExternal(t, in, "victim", nil)
				path = strings.Replace(path, "{fresh}", id.String(), 1)
			}
			headers := []string{}
			if pr.cookie != "" {
				headers = append(headers, "Cookie", "molecule_session="+pr.cookie, "Origin", in.URL)
			}
			r := in.Do(row.method, path, pr.bearer, row.body, headers...)
			got := "ok"
			if r.Status == 401 || r.Status == 403 {
				got = map[int]string{401: "401", 403: "403"}[r.Status]
			}
			if r.Status >= 500 {
				t.Errorf("%s %s as %s: %d %s", row.method, row.path, pr.name, r.Status, r.Body)
				continue
			}
			if got != want {
				t.Errorf("%s %s as %s: %d (%s), want %s", row.method, row.path, pr.name, r.Status, r.Body, want)
			}
		}
	}
	// A cookie without a same-origin header cannot change anything.
	r := in.Do("PATCH", A, "", map[string]any{"x": 2}, "Cookie", "molecule_session="+p.cookie, "Origin", "https://evil.example")
	wantStatus(t, r, 403)
}
