package api_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/apptest"
)

const upstreamInternal = "pg-shard-7 connection refused at 10.2.3.4"

// TestArtifactsUpstreamErrors proves the §18 mapping on every route: a
// Cloudflare 4xx keeps its status and message; a 5xx, a dropped
// connection, a non-Cloudflare body or an oversized body is a 502 with
// exactly "upstream service error" and none of the upstream's text.
func TestArtifactsUpstreamErrors(t *testing.T) {
	in, f := startArtifacts(t)
	linked, _ := in.CreateWorkspaceRow("linked", nil)
	wantStatus(t, in.Do("POST", artPath(linked, ""), in.Admin, nil), http.StatusCreated)

	modes := []struct {
		name    string
		respond http.HandlerFunc
		status  int
		code    string
		message string
	}{
		{"cloudflare 409", func(w http.ResponseWriter, _ *http.Request) {
			envelope(w, 409, nil, "A repository with that name already exists")
		}, 409, "conflict", "A repository with that name already exists"},
		{"cloudflare 400 two messages", func(w http.ResponseWriter, _ *http.Request) {
			envelope(w, 400, nil, "name is reserved", "try another")
		}, 400, "invalid_request", "name is reserved; try another"},
		{"cloudflare 429", func(w http.ResponseWriter, _ *http.Request) {
			envelope(w, 429, nil, "Please slow down")
		}, 429, "rate_limited", "Please slow down"},
		{"cloudflare 404", func(w http.ResponseWriter, _ *http.Request) {
			envelope(w, 404, nil, "Repository not found")
		}, 404, "not_found", "Repository not found"},
		{"cloudflare 500 with detail", func(w http.ResponseWriter, _ *http.Request) {
			envelope(w, 500, nil, upstreamInternal)
		}, 502, "upstream_error", "upstream service error"},
		{"503 html", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(503)
			io.WriteString(w, "<html>"+upstreamInternal+"</html>")
		}, 502, "upstream_error", "upstream service error"},
		{"403 from a proxy, not an envelope", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(403)
			io.WriteString(w, "Forbidden by "+upstreamInternal)
		}, 502, "upstream_error", "upstream service error"},
		{"200 success=false", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"success":false,"errors":[{"code":1,"message":"`+upstreamInternal+`"}],"result":null}`)
		}, 502, "upstream_error", "upstream service error"},
		{"body over 1 MiB", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"success":true,"errors":[],"result":{"name":"`))
			w.Write(bytes.Repeat([]byte("a"), 1<<20+1))
			w.Write([]byte(`"}}`))
		}, 502, "upstream_error", "upstream service error"},
		{"dropped connection", func(w http.ResponseWriter, _ *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}, 502, "upstream_error", "upstream service error"},
	}
	routes := []struct {
		name, method, sub string
		body              any
		fresh             bool
	}{
		{"create", "POST", "", map[string]any{"name": "new-repo"}, true},
		{"import", "POST", "", map[string]any{"import_url": "https://github.com/a/b.git"}, true},
		{"get", "GET", "", nil, false},
		{"fork", "POST", "/fork", map[string]any{"name": "fork-x"}, false},
		{"token", "POST", "/token", map[string]any{"scope": "write"}, false},
	}
	for _, mode := range modes {
		for _, rt := range routes {
			t.Run(mode.name+"/"+rt.name, func(t *testing.T) {
				ws := linked
				if rt.fresh {
					ws, _ = in.CreateWorkspaceRow("fresh", nil)
				}
				f.setFail(mode.respond)
				defer f.setFail(nil)
				before := len(f.Calls())
				r := in.Do(rt.method, artPath(ws, rt.sub), in.Admin, rt.body)
				m := wantStatus(t, r, mode.status)
				if m["error"] != mode.message || m["code"] != mode.code {
					t.Errorf("body = %s, want %q/%q", r.Body, mode.message, mode.code)
				}
				if strings.Contains(string(r.Body), upstreamInternal) || strings.Contains(string(r.Body), cfAPIToken) {
					t.Errorf("upstream text leaked: %s", r.Body)
				}
				if mode.status >= 500 && m["request_id"] == nil {
					t.Errorf("5xx without request_id: %s", r.Body)
				}
				if len(f.Calls()) == before {
					t.Errorf("no call reached the fake")
				}
				if rt.fresh {
					if _, _, ok := storedRemote(t, in, ws); ok {
						t.Errorf("a failed create linked a repo")
					}
				}
			})
		}
	}
}

// TestArtifactsAuth: WorkspaceAuth guards every route, ahead of the 503.
func TestArtifactsAuth(t *testing.T) {
	in, f := startArtifacts(t)
	ws, tok := in.CreateWorkspaceRow("owner", nil)
	_, otherTok := in.CreateWorkspaceRow("other", nil)
	wantStatus(t, in.Do("POST", artPath(ws, ""), tok, nil), http.StatusCreated)
	before := len(f.Calls())

	routes := []struct{ method, sub, body string }{
		{"POST", "", `{}`}, {"GET", "", ""}, {"POST", "/fork", `{"name":"f"}`}, {"POST", "/token", `{"scope":"read"}`},
	}
	for _, rt := range routes {
		var body any
		if rt.body != "" {
			body = rt.body
		}
		for _, tc := range []struct {
			name, path, bearer string
			status             int
		}{
			{"no credential", artPath(ws, rt.sub), "", 401},
			{"garbage bearer", artPath(ws, rt.sub), "not-a-token", 401},
			{"other workspace's token", artPath(ws, rt.sub), otherTok, 403},
			{"bad id", "/workspaces/not-a-uuid/artifacts" + rt.sub, in.Admin, 400},
			{"unknown workspace", artPath(uuid.New(), rt.sub), in.Admin, 404},
		} {
			r := in.Do(rt.method, tc.path, tc.bearer, body)
			if r.Status != tc.status {
				t.Errorf("%s %s %s: status %d, want %d: %s", rt.method, rt.sub, tc.name, r.Status, tc.status, r.Body)
			}
		}
	}
	if len(f.Calls()) != before {
		t.Fatalf("unauthorized requests reached Cloudflare: %+v", f.Calls()[before:])
	}
}

// TestArtifactsUnconfigured: with either variable missing every route is
// 503 "artifacts not configured" for an authorized caller.
func TestArtifactsUnconfigured(t *testing.T) {
	f := newFakeArtifacts(t)
	for _, drop := range []string{"CF_ARTIFACTS_API_TOKEN", "CF_ARTIFACTS_NAMESPACE"} {
		t.Run("without "+drop, func(t *testing.T) {
			env := f.env()
			delete(env, drop)
			in := apptest.Start(t, apptest.Options{Env: env})
			ws, tok := in.CreateWorkspaceRow("w", nil)
			for _, rt := range []struct{ method, sub, body string }{
				{"POST", "", `{"name":"x"}`}, {"GET", "", ""}, {"POST", "/fork", `{"name":"f"}`},
				{"POST", "/token", `{"scope":"read"}`},
			} {
				var body any
				if rt.body != "" {
					body = rt.body
				}
				r := in.Do(rt.method, artPath(ws, rt.sub), tok, body)
				m := wantStatus(t, r, http.StatusServiceUnavailable)
				if m["error"] != "artifacts not configured" || m["code"] != "unavailable" {
					t.Errorf("%s %s: %s", rt.method, rt.sub, r.Body)
				}
				if r := in.Do(rt.method, artPath(ws, rt.sub), "", body); r.Status != 401 {
					t.Errorf("%s %s anonymous: %d", rt.method, rt.sub, r.Status)
				}
			}
		})
	}
	if len(f.Calls()) != 0 {
		t.Fatalf("unconfigured server called Cloudflare: %+v", f.Calls())
	}
}

// TestArtifactsCreateRace: concurrent attaches to one workspace create one
// repo upstream; the rest are 409 without a call.
func TestArtifactsCreateRace(t *testing.T) {
	in, f := startArtifacts(t)
	ws, _ := in.CreateWorkspaceRow("racer", nil)
	const n = 8
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = in.Do("POST", artPath(ws, ""), in.Admin, map[string]any{"name": "race-" + string(rune('a'+i))}).Status
		}()
	}
	wg.Wait()
	created := 0
	for _, s := range statuses {
		switch s {
		case 201:
			created++
		case 409:
		default:
			t.Errorf("status %d", s)
		}
	}
	if created != 1 || len(f.Calls()) != 1 {
		t.Fatalf("created=%d calls=%d (%v)", created, len(f.Calls()), statuses)
	}
}

// TestArtifactsCleanupAfterFailedLink: when Cloudflare creates a repo that
// the database refuses to link (its name is already linked to another
// workspace), the new repo is deleted again instead of being orphaned.
func TestArtifactsCleanupAfterFailedLink(t *testing.T) {
	in, f := startArtifacts(t)
	a, _ := in.CreateWorkspaceRow("a", nil)
	b, _ := in.CreateWorkspaceRow("b", nil)
	wantStatus(t, in.Do("POST", artPath(a, ""), in.Admin, map[string]any{"name": "shared"}), http.StatusCreated)
	f.forget("shared") // Cloudflare lost it, so it lets b create the name again
	m := wantStatus(t, in.Do("POST", artPath(b, ""), in.Admin, map[string]any{"name": "shared"}), http.StatusConflict)
	if m["code"] != "conflict" {
		t.Errorf("body = %v", m)
	}
	calls := f.Calls()
	last := calls[len(calls)-1]
	if last.Method != "DELETE" || last.Path != "/shared" || f.has("shared") {
		t.Fatalf("the unlinked repo was not deleted: %+v", calls)
	}
	if _, _, ok := storedRemote(t, in, b); ok {
		t.Fatal("b was linked")
	}
}

// TestArtifactsNamespaceMoved: a link made in another namespace is not
// looked up in the configured one.
func TestArtifactsNamespaceMoved(t *testing.T) {
	in, f := startArtifacts(t)
	ws, _ := in.CreateWorkspaceRow("w", nil)
	wantStatus(t, in.Do("POST", artPath(ws, ""), in.Admin, nil), http.StatusCreated)
	if _, err := in.App.Store.DB.Exec(`UPDATE workspace_artifacts SET cf_namespace = 'old-ns' WHERE workspace_id = $1`, ws); err != nil {
		t.Fatal(err)
	}
	before := len(f.Calls())
	for _, rt := range []struct {
		method, sub string
		body        any
	}{{"GET", "", nil}, {"POST", "/fork", map[string]any{"name": "f"}}, {"POST", "/token", map[string]any{"scope": "read"}}} {
		m := wantStatus(t, in.Do(rt.method, artPath(ws, rt.sub), in.Admin, rt.body), http.StatusConflict)
		if !strings.Contains(m["error"].(string), "old-ns") {
			t.Errorf("%s: %v", rt.sub, m)
		}
	}
	if len(f.Calls()) != before {
		t.Fatal("called Cloudflare for a repo in another namespace")
	}
}

// TestArtifactsLogs: the upstream detail of a 502 goes to the log (and
// only there); the Cloudflare API token, git tokens and remote credentials
// never do.
func TestArtifactsLogs(t *testing.T) {
	f := newFakeArtifacts(t)
	var logs syncBuffer
	in := apptest.Start(t, apptest.Options{Env: f.env(), Log: &logs})
	ws, tok := in.CreateWorkspaceRow("w", nil)
	wantStatus(t, in.Do("POST", artPath(ws, ""), tok, nil), http.StatusCreated)
	wantStatus(t, in.Do("POST", artPath(ws, "/token"), tok, map[string]any{"scope": "write"}), http.StatusCreated)
	f.setFail(func(w http.ResponseWriter, _ *http.Request) { envelope(w, 500, nil, upstreamInternal) })
	r := in.Do("GET", artPath(ws, ""), tok, nil)
	wantStatus(t, r, http.StatusBadGateway)
	f.setFail(nil)

	out := logs.String()
	if !strings.Contains(out, upstreamInternal) {
		t.Errorf("the upstream detail was not logged:\n%s", out)
	}
	for _, secret := range []string{cfAPIToken, "art_git_token_value", cfSecret, tok} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains secret %q:\n%s", secret, out)
		}
	}
}
