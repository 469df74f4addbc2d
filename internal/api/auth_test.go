package api_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/apptest"
)

// principals builds every kind of credential of §1 against one instance.
type principals struct {
	in                *apptest.Instance
	org, revokedOrg   string
	cookie            string
	wsToken, otherTok string
	wsID              string
}

func setup(t *testing.T) *principals {
	t.Helper()
	in := apptest.Start(t, apptest.Options{})
	p := &principals{in: in}
	mint := func(name string) (string, string) {
		r := in.Do("POST", "/org/tokens", in.Admin, map[string]any{"name": name})
		if r.Status != http.StatusCreated {
			t.Fatalf("mint org token: %d %s", r.Status, r.Body)
		}
		m := r.Map(t)
		return m["auth_token"].(string), m["id"].(string)
	}
	p.org, _ = mint("ci")
	var revokedID string
	p.revokedOrg, revokedID = mint("old")
	if r := in.Do("DELETE", "/org/tokens/"+revokedID, in.Admin, nil); r.Status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	r := in.Do("POST", "/auth/session", "", map[string]any{"token": in.Admin})
	if r.Status != http.StatusCreated {
		t.Fatalf("session: %d %s", r.Status, r.Body)
	}
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == "molecule_session" {
			p.cookie = c.Value
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Fatalf("session cookie must be HttpOnly and SameSite=Strict: %+v", c)
			}
		}
	}
	if p.cookie == "" {
		t.Fatal("no session cookie")
	}
	id, tok := in.CreateWorkspaceRow("ws", nil)
	p.wsID, p.wsToken = id.String(), tok
	_, p.otherTok = in.CreateWorkspaceRow("other", nil)
	return p
}

// do sends as the named principal.
func (p *principals) do(who, method, path string, body any) *apptest.Response {
	switch who {
	case "none":
		return p.in.Do(method, path, "", body)
	case "garbage":
		return p.in.Do(method, path, "not-a-real-token-at-all", body)
	case "admin":
		return p.in.Do(method, path, p.in.Admin, body)
	case "org":
		return p.in.Do(method, path, p.org, body)
	case "revoked-org":
		return p.in.Do(method, path, p.revokedOrg, body)
	case "cookie":
		return p.in.Do(method, path, "", body, "Cookie", "molecule_session="+p.cookie, "Origin", p.in.URL)
	case "ws":
		return p.in.Do(method, path, p.wsToken, body)
	case "other-ws":
		return p.in.Do(method, path, p.otherTok, body)
	}
	panic(who)
}

// The auth matrix for the open and Admin groups: each principal against
// each group with the expected status. (The WorkspaceAuth and Agent groups
// extend it in workspaces_auth_test.go.)
func TestAuthMatrix(t *testing.T) {
	p := setup(t)
	who := []string{"none", "garbage", "admin", "org", "revoked-org", "cookie", "ws", "other-ws"}
	routes := []struct {
		method, path string
		want         map[string]int
	}{
		{"GET", "/health", all(who, 200)},
		{"GET", "/readyz", all(who, 200)},
		{"GET", "/openapi.json", all(who, 200)},
		{"GET", "/admin/liveness", adminOnly()},
		{"GET", "/org/tokens", adminOnly()},
		{"GET", "/metrics", adminOnly()},
	}
	for _, rt := range routes {
		for _, w := range who {
			r := p.do(w, rt.method, rt.path, nil)
			if r.Status != rt.want[w] {
				t.Errorf("%s %s as %s: got %d, want %d (%s)", rt.method, rt.path, w, r.Status, rt.want[w], r.Body)
			}
			if r.Status >= 400 {
				assertErrorBody(t, r)
			}
		}
	}
	// Unsafe method in the Admin group (cookie passes the same-origin check).
	for _, w := range who {
		r := p.do(w, "POST", "/org/tokens", map[string]any{"name": "n-" + w})
		want := adminOnly()[w]
		if want == 200 {
			want = 201
		}
		if r.Status != want {
			t.Errorf("POST /org/tokens as %s: got %d, want %d (%s)", w, r.Status, want, r.Body)
		}
	}
}

func all(who []string, code int) map[string]int {
	m := map[string]int{}
	for _, w := range who {
		m[w] = code
	}
	return m
}

func adminOnly() map[string]int {
	return map[string]int{"none": 401, "garbage": 401, "admin": 200, "org": 200, "revoked-org": 401,
		"cookie": 200, "ws": 403, "other-ws": 403}
}

func assertErrorBody(t *testing.T, r *apptest.Response) {
	t.Helper()
	m := r.Map(t)
	if _, ok := m["error"].(string); !ok {
		t.Errorf("error body without \"error\": %s", r.Body)
	}
	if _, ok := m["code"].(string); !ok {
		t.Errorf("error body without \"code\": %s", r.Body)
	}
}

// The same-origin table of §1 for cookie-authenticated unsafe requests.
func TestSameOriginCheck(t *testing.T) {
	p := setup(t)
	own := p.in.URL // http://127.0.0.1:PORT
	cases := []struct {
		name    string
		headers []string
		want    int
	}{
		{"origin equal", []string{"Origin", own}, 201},
		{"evil subdomain", []string{"Origin", "https://host.evil.com"}, 403},
		{"origin with port suffix trick", []string{"Origin", own + ".evil.com"}, 403},
		{"port-looking host", []string{"Origin", "https://host:8080.evil.com/"}, 403},
		{"other site", []string{"Origin", "http://evil.com"}, 403},
		{"null origin", []string{"Origin", "null"}, 403},
		{"referer is the origin", []string{"Referer", own}, 201},
		{"referer under the origin", []string{"Referer", own + "/canvas/page"}, 201},
		{"referer merely starts with the origin", []string{"Referer", own + "0/x"}, 403},
		{"referer with evil suffix", []string{"Referer", own + ".evil.com/"}, 403},
		{"neither header", nil, 403},
	}
	for _, c := range cases {
		h := append([]string{"Cookie", "molecule_session=" + p.cookie}, c.headers...)
		r := p.in.Do("POST", "/org/tokens", "", map[string]any{"name": "x"}, h...)
		if r.Status != c.want {
			t.Errorf("%s: got %d, want %d (%s)", c.name, r.Status, c.want, r.Body)
		}
	}
	// Safe methods need no origin.
	if r := p.in.Do("GET", "/org/tokens", "", nil, "Cookie", "molecule_session="+p.cookie); r.Status != 200 {
		t.Errorf("cookie GET without Origin: %d", r.Status)
	}
}

func TestSessionLifecycle(t *testing.T) {
	p := setup(t)
	cookie := []string{"Cookie", "molecule_session=" + p.cookie, "Origin", p.in.URL}
	// A workspace token cannot open a canvas session; garbage is a 401.
	if r := p.in.Do("POST", "/auth/session", "", map[string]any{"token": p.wsToken}); r.Status != 403 {
		t.Errorf("workspace token session: %d", r.Status)
	}
	if r := p.in.Do("POST", "/auth/session", "", map[string]any{"token": "nope"}); r.Status != 401 {
		t.Errorf("garbage session: %d", r.Status)
	}
	if r := p.in.Do("POST", "/auth/session", "", `{"token": 5}`); r.Status != 400 {
		t.Errorf("wrong type: %d", r.Status)
	}
	// Ending a session from another origin is refused.
	if r := p.in.Do("DELETE", "/auth/session", "", nil, "Cookie", "molecule_session="+p.cookie, "Origin", "http://evil.com"); r.Status != 403 {
		t.Errorf("cross-origin logout: %d", r.Status)
	}
	if r := p.in.Do("DELETE", "/auth/session", "", nil, cookie...); r.Status != 200 {
		t.Fatalf("logout: %d %s", r.Status, r.Body)
	}
	if r := p.in.Do("GET", "/org/tokens", "", nil, cookie...); r.Status != 401 {
		t.Errorf("ended session still works: %d", r.Status)
	}

	// A session minted from an org token dies with the token.
	r := p.in.Do("POST", "/org/tokens", p.in.Admin, map[string]any{"name": "canvas"})
	m := r.Map(t)
	r = p.in.Do("POST", "/auth/session", "", map[string]any{"token": m["auth_token"]})
	var c string
	for _, ck := range (&http.Response{Header: r.Header}).Cookies() {
		c = ck.Value
	}
	if r := p.in.Do("GET", "/org/tokens", "", nil, "Cookie", "molecule_session="+c); r.Status != 200 {
		t.Fatalf("org-token session: %d", r.Status)
	}
	p.in.Do("DELETE", "/org/tokens/"+m["id"].(string), p.in.Admin, nil)
	if r := p.in.Do("GET", "/org/tokens", "", nil, "Cookie", "molecule_session="+c); r.Status != 401 {
		t.Errorf("session outlived its org token: %d", r.Status)
	}
}

// Revoking an org token takes effect at once (the auth cache is dropped).
func TestOrgTokenRevocationImmediate(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	m := in.Do("POST", "/org/tokens", in.Admin, map[string]any{"name": "x"}).Map(t)
	tok := m["auth_token"].(string)
	if r := in.Do("GET", "/org/tokens", tok, nil); r.Status != 200 {
		t.Fatalf("fresh token: %d", r.Status)
	}
	if r := in.Do("DELETE", "/org/tokens/"+m["id"].(string), in.Admin, nil); r.Status != 200 {
		t.Fatalf("revoke: %d", r.Status)
	}
	if r := in.Do("GET", "/org/tokens", tok, nil); r.Status != 401 {
		t.Fatalf("revoked token still accepted: %d", r.Status)
	}
	// Listing never shows a secret.
	r := in.Do("GET", "/org/tokens", in.Admin, nil)
	if strings.Contains(string(r.Body), tok) || strings.Contains(string(r.Body), "auth_token") {
		t.Fatalf("list leaks token: %s", r.Body)
	}
	// Bad ids and unknown ids.
	if r := in.Do("DELETE", "/org/tokens/not-a-uuid", in.Admin, nil); r.Status != 400 {
		t.Errorf("bad id: %d", r.Status)
	}
	if r := in.Do("DELETE", "/org/tokens/"+m["id"].(string), in.Admin, nil); r.Status != 404 {
		t.Errorf("already revoked: %d", r.Status)
	}
}

// Every route outside the open group answers 401 without a credential (and
// with a garbage one), whatever its path parameters: no route fails open.
func TestEveryNonOpenRouteRequiresCredentials(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	open := map[string]bool{"GET /health": true, "GET /readyz": true, "GET /openapi.json": true,
		"POST /auth/session": true, "DELETE /auth/session": true}
	param := regexp.MustCompile(`:[A-Za-z_]+`)
	wildcard := regexp.MustCompile(`\*[A-Za-z_]+$`)
	routes := in.App.Handler.(*gin.Engine).Routes()
	if len(routes) < 50 {
		t.Fatalf("only %d routes registered", len(routes))
	}
	for _, rt := range routes {
		if open[rt.Method+" "+rt.Path] {
			continue
		}
		path := param.ReplaceAllString(rt.Path, uuid.NewString())
		path = wildcard.ReplaceAllString(path, "config.yaml")
		for _, bearer := range []string{"", "garbage-credential"} {
			r := in.Do(rt.Method, path, bearer, `{}`)
			if r.Status != 401 {
				t.Errorf("%s %s with bearer %q: %d, want 401 (%s)", rt.Method, rt.Path, bearer, r.Status, r.Body)
			}
		}
	}
}

// The session cookie is Secure when the server is served over TLS (its
// public URL is https), and never otherwise: a plain-http dev server would
// have the browser drop a Secure cookie.
func TestSessionCookieSecureBehindTLS(t *testing.T) {
	for _, c := range []struct {
		public string
		secure bool
	}{{"", false}, {"https://molecule.example.com", true}} {
		in := apptest.Start(t, apptest.Options{Env: map[string]string{"MOLECULE_PUBLIC_URL": c.public}})
		r := in.Do("POST", "/auth/session", "", map[string]any{"token": in.Admin})
		cookies := (&http.Response{Header: r.Header}).Cookies()
		if r.Status != 201 || len(cookies) != 1 || cookies[0].Secure != c.secure || !cookies[0].HttpOnly {
			t.Errorf("public URL %q: status %d cookies %+v, want Secure=%v", c.public, r.Status, cookies, c.secure)
		}
	}
}
