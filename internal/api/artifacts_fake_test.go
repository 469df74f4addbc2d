package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	cfNamespace = "molecule-test"
	cfAPIToken  = "cf-api-token-do-not-leak"
	// cfSecret is the credential the fake embeds in every remote URL it
	// returns; it must never reach the database.
	cfSecret = "s3cr3t-remote-pw"
)

// cfCall is one request as the fake Cloudflare saw it.
type cfCall struct {
	Method string
	Path   string // after /namespaces/{ns}/repos
	Auth   string
	Body   map[string]any
}

// fakeArtifacts is a stateful stand-in for the Cloudflare Artifacts API
// speaking the v4 envelope. It keeps repos by name, answers 409 for a name
// in use and 404 for an unknown one, and records every request so tests can
// prove that bad input never produced a call. fail, when set, answers
// instead of the normal behaviour (upstream failure modes).
type fakeArtifacts struct {
	t     *testing.T
	srv   *httptest.Server
	mu    sync.Mutex
	calls []cfCall
	repos map[string]map[string]any
	fail  http.HandlerFunc
}

func newFakeArtifacts(t *testing.T) *fakeArtifacts {
	f := &fakeArtifacts{t: t, repos: map[string]map[string]any{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// env is the configuration that points the platform at the fake.
func (f *fakeArtifacts) env() map[string]string {
	return map[string]string{
		"CF_ARTIFACTS_API_URL":   f.srv.URL + "/client/v4/artifacts",
		"CF_ARTIFACTS_NAMESPACE": cfNamespace,
		"CF_ARTIFACTS_API_TOKEN": cfAPIToken,
	}
}

func (f *fakeArtifacts) Calls() []cfCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]cfCall(nil), f.calls...)
}

func (f *fakeArtifacts) setFail(h http.HandlerFunc) {
	f.mu.Lock()
	f.fail = h
	f.mu.Unlock()
}

func (f *fakeArtifacts) forget(name string) {
	f.mu.Lock()
	delete(f.repos, name)
	f.mu.Unlock()
}

func (f *fakeArtifacts) has(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.repos[name]
	return ok
}

func envelope(w http.ResponseWriter, status int, result any, errs ...string) {
	list := []map[string]any{}
	for i, m := range errs {
		list = append(list, map[string]any{"code": 10000 + i, "message": m})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"success": status < 300, "errors": list, "messages": []any{}, "result": result,
	})
}

func (f *fakeArtifacts) newRepo(name, desc string, readOnly bool) map[string]any {
	now := time.Now().UTC().Format(time.RFC3339)
	r := map[string]any{
		"id": "repo_" + name, "name": name, "namespace": cfNamespace, "description": desc,
		// Cloudflare may hand back a remote with credentials embedded.
		"remote_url":     "https://x-token:" + cfSecret + "@artifacts.example.com/" + cfNamespace + "/" + name + ".git",
		"default_branch": "main", "read_only": readOnly, "created_at": now, "updated_at": now,
	}
	f.repos[name] = r
	return r
}

func (f *fakeArtifacts) serve(w http.ResponseWriter, r *http.Request) {
	prefix := "/client/v4/artifacts/namespaces/" + cfNamespace + "/repos"
	c := cfCall{Method: r.Method, Path: strings.TrimPrefix(r.URL.EscapedPath(), prefix), Auth: r.Header.Get("Authorization")}
	raw, _ := io.ReadAll(r.Body)
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &c.Body); err != nil {
			f.t.Errorf("fake: body is not a JSON object: %s", raw)
		}
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	fail := f.fail
	f.mu.Unlock()

	if c.Auth != "Bearer "+cfAPIToken {
		envelope(w, http.StatusUnauthorized, nil, "Authentication error")
		return
	}
	if !strings.HasPrefix(r.URL.EscapedPath(), prefix) {
		envelope(w, http.StatusNotFound, nil, "No route for that URI")
		return
	}
	if fail != nil {
		fail(w, r)
		return
	}
	str := func(k string) string { s, _ := c.Body[k].(string); return s }
	boolean := func(k string) bool { b, _ := c.Body[k].(bool); return b }

	f.mu.Lock()
	defer f.mu.Unlock()
	segs := strings.Split(strings.Trim(c.Path, "/"), "/")
	switch {
	case r.Method == http.MethodPost && (c.Path == "" || c.Path == "/import"):
		name := str("name")
		if _, ok := f.repos[name]; ok {
			envelope(w, http.StatusConflict, nil, "A repository with that name already exists")
			return
		}
		if c.Path == "/import" && !strings.HasPrefix(str("url"), "https://") {
			envelope(w, http.StatusBadRequest, nil, "import url must be https")
			return
		}
		envelope(w, http.StatusOK, f.newRepo(name, str("description"), boolean("read_only")))
	case r.Method == http.MethodGet && len(segs) == 1:
		if repo, ok := f.repos[segs[0]]; ok {
			envelope(w, http.StatusOK, repo)
			return
		}
		envelope(w, http.StatusNotFound, nil, "Repository not found")
	case r.Method == http.MethodDelete && len(segs) == 1:
		delete(f.repos, segs[0])
		envelope(w, http.StatusOK, map[string]any{"id": segs[0]})
	case r.Method == http.MethodPost && len(segs) == 2 && segs[1] == "fork":
		if _, ok := f.repos[segs[0]]; !ok {
			envelope(w, http.StatusNotFound, nil, "Repository not found")
			return
		}
		name := str("name")
		if _, ok := f.repos[name]; ok {
			envelope(w, http.StatusConflict, nil, "A repository with that name already exists")
			return
		}
		envelope(w, http.StatusOK, f.newRepo(name, str("description"), boolean("read_only")))
	case r.Method == http.MethodPost && len(segs) == 2 && segs[1] == "tokens":
		repo, ok := f.repos[segs[0]]
		if !ok {
			envelope(w, http.StatusNotFound, nil, "Repository not found")
			return
		}
		ttl, _ := c.Body["ttl"].(float64)
		envelope(w, http.StatusOK, map[string]any{
			"id": "tok_1", "token": "art_git_token_value", "scope": str("scope"),
			"expires_at": time.Now().Add(time.Duration(ttl) * time.Second).UTC().Format(time.RFC3339),
			"remote_url": repo["remote_url"],
		})
	default:
		envelope(w, http.StatusNotFound, nil, "No route for that URI")
	}
}
