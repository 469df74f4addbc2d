package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/api"
	"github.com/moleculesai/molecule/internal/apptest"
	"github.com/moleculesai/molecule/internal/apptest/kit"
)

func startArtifacts(t *testing.T) (*apptest.Instance, *fakeArtifacts) {
	t.Helper()
	f := newFakeArtifacts(t)
	return apptest.Start(t, apptest.Options{Env: f.env()}), f
}

func artPath(id uuid.UUID, sub string) string {
	return "/workspaces/" + id.String() + "/artifacts" + sub
}

// storedRemote reads the link row straight from Postgres.
func storedRemote(t *testing.T, in *apptest.Instance, ws uuid.UUID) (name, remote string, found bool) {
	t.Helper()
	err := in.App.Store.DB.QueryRowContext(context.Background(),
		`SELECT cf_repo_name, remote_url FROM workspace_artifacts WHERE workspace_id = $1`, ws).Scan(&name, &remote)
	if err != nil {
		return "", "", false
	}
	return name, remote, true
}

// TestArtifactsRoutes walks every route the way an agent would: attach,
// read, fork, mint tokens.
func TestArtifactsRoutes(t *testing.T) {
	in, f := startArtifacts(t)
	ws, tok := in.CreateWorkspaceRow("builder", nil)

	// Nothing linked yet: 404 on every route that needs a repo, and no call.
	for _, r := range []struct{ method, sub, body string }{
		{"GET", "", ""}, {"POST", "/fork", `{"name":"f"}`}, {"POST", "/token", `{"scope":"read"}`},
	} {
		var body any
		if r.body != "" {
			body = r.body
		}
		m := wantStatus(t, in.Do(r.method, artPath(ws, r.sub), tok, body), http.StatusNotFound)
		if m["code"] != "not_found" {
			t.Errorf("%s %s: %v", r.method, r.sub, m)
		}
	}
	if n := len(f.Calls()); n != 0 {
		t.Fatalf("fake saw %d calls before any repo existed", n)
	}

	// Attach with the workspace's own token and no body: default name.
	m := wantStatus(t, in.Do("POST", artPath(ws, ""), tok, nil), http.StatusCreated)
	wantName := "molecule-ws-" + ws.String()
	if m["cf_repo_name"] != wantName || m["cf_namespace"] != cfNamespace || m["workspace_id"] != ws.String() {
		t.Fatalf("create = %v", m)
	}
	for _, k := range []string{"id", "remote_url", "description", "created_at", "updated_at"} {
		if _, ok := m[k]; !ok {
			t.Errorf("create lacks %q: %v", k, m)
		}
	}
	wantRemote := "https://artifacts.example.com/" + cfNamespace + "/" + wantName + ".git"
	if m["remote_url"] != wantRemote {
		t.Errorf("remote_url = %v, want %s", m["remote_url"], wantRemote)
	}
	name, remote, ok := storedRemote(t, in, ws)
	if !ok || name != wantName || remote != wantRemote || strings.Contains(remote, cfSecret) {
		t.Fatalf("stored row = %q %q %v; want the credential-stripped URL", name, remote, ok)
	}
	calls := f.Calls()
	if len(calls) != 1 || calls[0].Method != "POST" || calls[0].Path != "" || calls[0].Body["name"] != wantName {
		t.Fatalf("calls = %+v", calls)
	}

	// A second repo for the same workspace is a 409, decided without Cloudflare.
	m = wantStatus(t, in.Do("POST", artPath(ws, ""), in.Admin, map[string]any{"name": "another"}), http.StatusConflict)
	if m["code"] != "conflict" {
		t.Errorf("409 body = %v", m)
	}
	if len(f.Calls()) != 1 {
		t.Fatalf("second create reached Cloudflare: %+v", f.Calls())
	}

	// GET: link plus live metadata, credentials stripped everywhere.
	r := in.Do("GET", artPath(ws, ""), tok, nil)
	m = wantStatus(t, r, http.StatusOK)
	if strings.Contains(string(r.Body), cfSecret) {
		t.Fatalf("GET leaks the remote credential: %s", r.Body)
	}
	live, _ := m["repo"].(map[string]any)
	if m["cf_repo_name"] != wantName || live["name"] != wantName || live["default_branch"] != "main" || live["remote_url"] != wantRemote {
		t.Fatalf("GET = %v", m)
	}

	// Fork into a new, unlinked repo.
	r = in.Do("POST", artPath(ws, "/fork"), tok, map[string]any{"name": "my-fork", "description": "try", "default_branch_only": true})
	m = wantStatus(t, r, http.StatusCreated)
	fork, _ := m["repo"].(map[string]any)
	if m["forked_from"] != wantName || fork["name"] != "my-fork" || strings.Contains(string(r.Body), cfSecret) {
		t.Fatalf("fork = %s", r.Body)
	}
	last := f.Calls()[len(f.Calls())-1]
	if last.Path != "/"+wantName+"/fork" || last.Body["default_branch_only"] != true || last.Body["description"] != "try" {
		t.Fatalf("fork call = %+v", last)
	}
	if n, _, _ := storedRemote(t, in, ws); n != wantName {
		t.Errorf("fork replaced the link: %q", n)
	}

	// Tokens: default TTL 3600, explicit TTL passed on, the maximum allowed.
	for _, tc := range []struct {
		body    map[string]any
		wantTTL float64
	}{
		{map[string]any{"scope": "read"}, 3600},
		{map[string]any{"scope": "write", "ttl": 60}, 60},
		{map[string]any{"scope": "read", "ttl": 604800}, 604800},
	} {
		r := in.Do("POST", artPath(ws, "/token"), tok, tc.body)
		m := wantStatus(t, r, http.StatusCreated)
		if m["token"] != "art_git_token_value" || m["scope"] != tc.body["scope"] || m["ttl"] != tc.wantTTL ||
			m["expires_at"] == nil || m["remote_url"] != wantRemote {
			t.Errorf("token %v = %v", tc.body, m)
		}
		if r.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("token answer is cacheable")
		}
		last := f.Calls()[len(f.Calls())-1]
		if last.Path != "/"+wantName+"/tokens" || last.Body["ttl"] != tc.wantTTL || last.Body["scope"] != tc.body["scope"] {
			t.Errorf("token call = %+v", last)
		}
	}
	// The platform never stores the git token.
	if n := kit.Count(t, in.App.Store.DB, "workspace_artifacts", "remote_url LIKE '%art_git%' OR description LIKE '%art_git%'"); n != 0 {
		t.Errorf("token stored: n=%d", n)
	}
}

// TestArtifactsImportAndNames covers import (https only, fields passed on)
// and explicit names.
func TestArtifactsImportAndNames(t *testing.T) {
	in, f := startArtifacts(t)
	ws, _ := in.CreateWorkspaceRow("importer", nil)
	body := map[string]any{
		"name": "Imported_repo-1", "description": "from upstream", "import_url": "https://github.com/acme/tool.git",
		"import_branch": "release/v1.2", "import_depth": 1, "read_only": true,
	}
	m := wantStatus(t, in.Do("POST", artPath(ws, ""), in.Admin, body), http.StatusCreated)
	if m["cf_repo_name"] != "Imported_repo-1" || m["description"] != "from upstream" {
		t.Fatalf("import = %v", m)
	}
	c := f.Calls()
	if len(c) != 1 || c[0].Path != "/import" || c[0].Body["url"] != "https://github.com/acme/tool.git" ||
		c[0].Body["branch"] != "release/v1.2" || c[0].Body["depth"] != float64(1) || c[0].Body["read_only"] != true {
		t.Fatalf("import call = %+v", c)
	}
	if _, remote, _ := storedRemote(t, in, ws); strings.Contains(remote, "@") {
		t.Fatalf("stored remote keeps user-info: %q", remote)
	}
}

// TestArtifactsBadInput sends every bad input of §18 and the general
// checks (§0) and proves that none of them reached Cloudflare.
func TestArtifactsBadInput(t *testing.T) {
	in, f := startArtifacts(t)
	fresh, _ := in.CreateWorkspaceRow("fresh", nil)   // no repo: create is tested here
	linked, _ := in.CreateWorkspaceRow("linked", nil) // has a repo: fork and token are tested here
	wantStatus(t, in.Do("POST", artPath(linked, ""), in.Admin, nil), http.StatusCreated)
	before := len(f.Calls())

	long := strings.Repeat("a", 64)
	big := `{"description":"` + strings.Repeat("x", 1<<20+10) + `"}`
	cases := []struct {
		name   string
		ws     uuid.UUID
		sub    string
		body   string
		status int
	}{
		// Requirement 1: import_url must be https, checked before any call.
		{"import http", fresh, "", `{"import_url":"http://github.com/a/b.git"}`, 400},
		{"import git", fresh, "", `{"import_url":"git://github.com/a/b.git"}`, 400},
		{"import ssh", fresh, "", `{"import_url":"ssh://git@github.com/a/b.git"}`, 400},
		{"import file", fresh, "", `{"import_url":"file:///etc/passwd"}`, 400},
		{"import scp style", fresh, "", `{"import_url":"git@github.com:a/b.git"}`, 400},
		{"import ftp", fresh, "", `{"import_url":"ftp://example.com/x"}`, 400},
		{"import no scheme", fresh, "", `{"import_url":"github.com/a/b"}`, 400},
		{"import upper HTTP", fresh, "", `{"import_url":"HTTP://github.com/a/b"}`, 400},
		{"import opaque", fresh, "", `{"import_url":"https:github.com/a/b"}`, 400},
		{"import no host", fresh, "", `{"import_url":"https:///a/b"}`, 400},
		{"import credentials", fresh, "", `{"import_url":"https://user:pw@github.com/a/b"}`, 400},
		{"import disguised host", fresh, "", `{"import_url":"https://github.com@169.254.169.254/"}`, 400},
		{"import empty", fresh, "", `{"import_url":""}`, 400},
		{"import javascript", fresh, "", `{"import_url":"javascript:alert(1)"}`, 400},
		{"import bad port", fresh, "", `{"import_url":"https://github.com:99999/a"}`, 400},
		{"import url wrong type", fresh, "", `{"import_url":42}`, 400},
		{"import depth negative", fresh, "", `{"import_url":"https://github.com/a/b","import_depth":-1}`, 400},
		{"import depth string", fresh, "", `{"import_url":"https://github.com/a/b","import_depth":"1"}`, 400},
		{"import depth fraction", fresh, "", `{"import_url":"https://github.com/a/b","import_depth":1.5}`, 400},
		{"import branch traversal", fresh, "", `{"import_url":"https://github.com/a/b","import_branch":"../x"}`, 400},
		{"import branch option", fresh, "", `{"import_url":"https://github.com/a/b","import_branch":"--upload-pack=x"}`, 400},
		{"import branch space", fresh, "", `{"import_url":"https://github.com/a/b","import_branch":"a b"}`, 400},
		{"branch without url", fresh, "", `{"import_branch":"main"}`, 400},
		{"depth without url", fresh, "", `{"import_depth":3}`, 400},
		// Requirement 3: explicit names, create and fork.
		{"create name empty", fresh, "", `{"name":""}`, 400},
		{"create name dash", fresh, "", `{"name":"-x"}`, 400},
		{"create name underscore", fresh, "", `{"name":"_x"}`, 400},
		{"create name slash", fresh, "", `{"name":"a/b"}`, 400},
		{"create name dots", fresh, "", `{"name":".."}`, 400},
		{"create name space", fresh, "", `{"name":"a b"}`, 400},
		{"create name 64", fresh, "", `{"name":"` + long + `"}`, 400},
		{"create name newline", fresh, "", `{"name":"abc\n"}`, 400},
		{"create name unicode", fresh, "", `{"name":"r\u00e9po"}`, 400},
		{"create name NUL", fresh, "", `{"name":"a\u0000b"}`, 400},
		{"create name wrong type", fresh, "", `{"name":5}`, 400},
		{"fork name missing", linked, "/fork", `{"description":"x"}`, 400},
		{"fork name null", linked, "/fork", `{"name":null}`, 400},
		{"fork name empty", linked, "/fork", `{"name":""}`, 400},
		{"fork name dash", linked, "/fork", `{"name":"-fork"}`, 400},
		{"fork name traversal", linked, "/fork", `{"name":"../other"}`, 400},
		{"fork name 64", linked, "/fork", `{"name":"` + long + `"}`, 400},
		{"fork name wrong type", linked, "/fork", `{"name":["a"]}`, 400},
		{"fork no body", linked, "/fork", ``, 400},
		// Token scope and ttl.
		{"token scope missing", linked, "/token", `{"ttl":60}`, 400},
		{"token scope admin", linked, "/token", `{"scope":"admin"}`, 400},
		{"token scope upper", linked, "/token", `{"scope":"READ"}`, 400},
		{"token scope empty", linked, "/token", `{"scope":""}`, 400},
		{"token scope wrong type", linked, "/token", `{"scope":1}`, 400},
		{"token ttl zero", linked, "/token", `{"scope":"read","ttl":0}`, 400},
		{"token ttl negative", linked, "/token", `{"scope":"read","ttl":-1}`, 400},
		{"token ttl over max", linked, "/token", `{"scope":"read","ttl":604801}`, 400},
		{"token ttl string", linked, "/token", `{"scope":"read","ttl":"3600"}`, 400},
		{"token ttl fraction", linked, "/token", `{"scope":"read","ttl":1.5}`, 400},
		{"token ttl huge", linked, "/token", `{"scope":"read","ttl":1e30}`, 400},
		{"token no body", linked, "/token", ``, 400},
		// General (§0): malformed JSON, wrong types, NUL, size.
		{"create malformed", fresh, "", `{"name":`, 400},
		{"create array", fresh, "", `[1,2]`, 400},
		{"create trailing", fresh, "", `{} {}`, 400},
		{"create read_only string", fresh, "", `{"read_only":"yes"}`, 400},
		{"create description NUL", fresh, "", `{"description":"a\u0000b"}`, 400},
		{"create description long", fresh, "", `{"description":"` + strings.Repeat("d", 1025) + `"}`, 400},
		{"fork malformed", linked, "/fork", `{"name":"x"`, 400},
		{"fork description NUL", linked, "/fork", `{"name":"ok","description":"\u0000"}`, 400},
		{"fork read_only wrong type", linked, "/fork", `{"name":"ok","read_only":1}`, 400},
		{"token malformed", linked, "/token", `scope=read`, 400},
		{"create too large", fresh, "", big, 413},
		{"fork too large", linked, "/fork", big, 413},
		{"token too large", linked, "/token", big, 413},
		// Create on a workspace that already has a repo.
		{"create when linked", linked, "", `{"name":"second"}`, 409},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body any
			if tc.body != "" {
				body = tc.body
			}
			r := in.Do("POST", artPath(tc.ws, tc.sub), in.Admin, body)
			if r.Status != tc.status {
				t.Fatalf("status = %d, want %d: %s", r.Status, tc.status, r.Body)
			}
			if got := len(f.Calls()); got != before {
				t.Fatalf("bad input reached Cloudflare: %+v", f.Calls()[before:])
			}
			if _, _, ok := storedRemote(t, in, fresh); ok {
				t.Fatalf("bad input linked a repo")
			}
		})
	}
}

// TestArtifactsOpenAPI: the document describes the four routes.
func TestArtifactsOpenAPI(t *testing.T) {
	doc, err := api.LoadOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	paths, _ := doc["paths"].(map[string]any)
	for path, methods := range map[string][]string{
		"/workspaces/{id}/artifacts":       {"get", "post"},
		"/workspaces/{id}/artifacts/fork":  {"post"},
		"/workspaces/{id}/artifacts/token": {"post"},
	} {
		item, _ := paths[path].(map[string]any)
		for _, m := range methods {
			if _, ok := item[m]; !ok {
				t.Errorf("openapi lacks %s %s", m, path)
			}
		}
	}
}
