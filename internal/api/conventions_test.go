package api_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/gin-gonic/gin"

	"github.com/moleculesai/molecule/internal/api"
	"github.com/moleculesai/molecule/internal/apptest"
	"github.com/moleculesai/molecule/internal/store"
	"github.com/moleculesai/molecule/internal/testutil"
)

func TestRequestIDEchoedOrGenerated(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	r := in.Do("GET", "/health", "", nil, "X-Request-ID", "trace-abc-123")
	if got := r.Header.Get("X-Request-ID"); got != "trace-abc-123" {
		t.Fatalf("echo: %q", got)
	}
	r = in.Do("GET", "/no/such/route", "", nil)
	if len(r.Header.Get("X-Request-ID")) < 16 || r.Status != 404 {
		t.Fatalf("generated id on a 404: %q %d", r.Header.Get("X-Request-ID"), r.Status)
	}
	// A hostile id (header injection attempt, too long) is replaced.
	r = in.Do("GET", "/health", "", nil, "X-Request-ID", strings.Repeat("x", 300))
	if len(r.Header.Get("X-Request-ID")) > 128 {
		t.Fatal("overlong request id echoed")
	}
}

func TestBodyCapAndMalformedJSON(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	big := `{"name":"` + strings.Repeat("a", 1<<20) + `"}`
	r := in.Do("POST", "/org/tokens", in.Admin, big)
	if r.Status != 413 || r.Map(t)["code"] != "payload_too_large" {
		t.Fatalf("oversized body: %d %s", r.Status, r.Body)
	}
	// A chunked body (no Content-Length) over the cap fails on read, too.
	req, _ := http.NewRequest("POST", in.URL+"/org/tokens", io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+in.Admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("chunked oversized body: %d", resp.StatusCode)
	}
	for body, want := range map[string]string{
		`{"name":`:                 "malformed JSON",
		`not json`:                 "malformed JSON",
		`{"name": 12}`:             `field "name" must be a string`,
		`["name"]`:                 "must be a JSON object",
		``:                         "request body is required",
		`{"name":"a"} {}`:          "trailing data",
		`{"name":""}`:              `"name" is required`,
		"{\"name\":\"a\\u0000b\"}": "NUL",
	} {
		r := in.Do("POST", "/org/tokens", in.Admin, body)
		if r.Status != 400 || !strings.Contains(r.Map(t)["error"].(string), want) {
			t.Errorf("body %q: %d %s (want 400 with %q)", body, r.Status, r.Body, want)
		}
	}
	// Pagination: negative and non-numeric are 400; over the max clamps.
	for _, q := range []string{"limit=-1", "limit=abc", "offset=-3", "offset=x"} {
		if r := in.Do("GET", "/org/tokens?"+q, in.Admin, nil); r.Status != 400 {
			t.Errorf("?%s: %d", q, r.Status)
		}
	}
	if m := in.Do("GET", "/org/tokens?limit=100000", in.Admin, nil).Map(t); m["limit"].(float64) != 200 {
		t.Errorf("limit not clamped: %v", m["limit"])
	}
}

// An internal error answers the opaque body: driver text never reaches the
// client, the request id does, and the full error is logged.
func TestInternalErrorIsOpaque(t *testing.T) {
	db, mock, err := sqlmock.New()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mock.MatchExpectationsInOrder(false)
	leak := `pq: relation "auth_tokens" does not exist at character 42 SELECT secret FROM`
	mock.ExpectQuery("SELECT").WillReturnError(&net.OpError{Op: "read", Err: errors.New(leak)})
	mock.ExpectQuery("INSERT INTO auth_tokens").WillReturnError(errors.New(leak))

	logs := &syncBuffer{}
	h := api.NewTestServer(t, api.TestServerOptions{Store: store.New(db), Env: map[string]string{"ADMIN_TOKEN": "admin-token-123"}, Log: logs})

	resp := h.Do("POST", "/org/tokens", "admin-token-123", `{"name":"x"}`)
	body := resp.Body
	if resp.Status != 500 {
		t.Fatalf("status %d %s", resp.Status, body)
	}
	if strings.Contains(string(body), "pq:") || strings.Contains(string(body), "auth_tokens") || strings.Contains(string(body), "SELECT") {
		t.Fatalf("driver text leaked: %s", body)
	}
	want := regexp.MustCompile(`^\{"code":"internal","error":"internal error","request_id":"[0-9a-f]{24}"\}$`)
	if !want.Match(body) {
		t.Fatalf("opaque body: %s", body)
	}
	if !strings.Contains(logs.String(), "auth_tokens") {
		t.Fatal("the full error was not logged")
	}

	// A database error while checking a credential is a 503, never a pass.
	if r := h.Do("GET", "/org/tokens", "some-org-token", nil); r.Status != 503 {
		t.Fatalf("auth lookup failure must be 503, got %d", r.Status)
	}
}

// Every route registered in the router has its operation in the OpenAPI
// document, and every documented operation is routed.
func TestOpenAPIMatchesRouter(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	doc, err := api.LoadOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	paths, _ := doc["paths"].(map[string]any)
	param := regexp.MustCompile(`[:*]([A-Za-z_]+)`)
	routed := map[string]bool{}
	for _, rt := range in.App.Handler.(*gin.Engine).Routes() {
		p := param.ReplaceAllString(rt.Path, "{$1}")
		key := strings.ToLower(rt.Method) + " " + p
		routed[key] = true
		ops, _ := paths[p].(map[string]any)
		if _, ok := ops[strings.ToLower(rt.Method)]; !ok {
			t.Errorf("route %s %s is missing from the OpenAPI document", rt.Method, p)
		}
	}
	for p, v := range paths {
		for m := range v.(map[string]any) {
			if m == "parameters" {
				continue
			}
			if !routed[m+" "+p] {
				t.Errorf("OpenAPI documents %s %s, which the router does not serve", strings.ToUpper(m), p)
			}
		}
	}
	r := in.Do("GET", "/openapi.json", "", nil)
	if r.Status != 200 || r.Map(t)["openapi"] != "3.0.3" {
		t.Fatalf("/openapi.json: %d", r.Status)
	}
}

// Readiness turns 503 when Postgres goes away and back to 200 when it
// returns. The server reaches Postgres through a proxy the test cuts.
func TestReadinessFollowsPostgres(t *testing.T) {
	dsn := testutil.NewDatabase(t)
	proxy := newTCPProxy(t, hostOf(t, dsn))
	in := apptest.Start(t, apptest.Options{DSN: strings.Replace(dsn, hostOf(t, dsn), proxy.addr(), 1)})
	if r := in.Do("GET", "/readyz", "", nil); r.Status != 200 {
		t.Fatalf("ready: %d %s", r.Status, r.Body)
	}
	proxy.cut()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := in.Do("GET", "/readyz", "", nil)
		if r.Status == 503 {
			if r.Map(t)["code"] != "unavailable" {
				t.Fatalf("503 body: %s", r.Body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz stayed %d with Postgres gone", r.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := in.Do("GET", "/health", "", nil); r.Status != 200 {
		t.Fatalf("health depends on nothing: %d", r.Status)
	}
	// Auth lookups fail closed while the database is gone.
	if r := in.Do("GET", "/org/tokens", "some-org-token-value", nil); r.Status != 503 {
		t.Fatalf("credential check with Postgres down: %d", r.Status)
	}
	proxy.restore()
	deadline = time.Now().Add(10 * time.Second)
	for {
		if r := in.Do("GET", "/readyz", "", nil); r.Status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("readyz did not recover")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func hostOf(t *testing.T, dsn string) string {
	t.Helper()
	m := regexp.MustCompile(`@([^/]+)/`).FindStringSubmatch(dsn)
	if m == nil {
		t.Fatalf("no host in %s", dsn)
	}
	return m[1]
}

// tcpProxy forwards to target until cut, which closes every connection and
// refuses new ones until restore.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.down {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.mu.Unlock()
			go p.pipe(c)
		}
	}()
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) pipe(c net.Conn) {
	u, err := (&net.Dialer{Timeout: 2 * time.Second}).DialContext(context.Background(), "tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[u] = struct{}{}, struct{}{}
	p.mu.Unlock()
	go func() { io.Copy(u, c); u.Close() }()
	io.Copy(c, u)
	c.Close()
}

func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *tcpProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// MOLECULE_RATE_LIMIT caps requests per minute per principal with a 429
// rate_limited and Retry-After; another principal has its own budget.
func TestRateLimit(t *testing.T) {
	in := apptest.Start(t, apptest.Options{Env: map[string]string{"MOLECULE_RATE_LIMIT": "5"}})
	for i := range 5 {
		if r := in.Do("GET", "/admin/liveness", in.Admin, nil); r.Status != 200 {
			t.Fatalf("request %d: %d", i, r.Status)
		}
	}
	r := in.Do("GET", "/admin/liveness", in.Admin, nil)
	if r.Status != 429 || r.Map(t)["code"] != "rate_limited" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("over the limit: %d %s retry-after=%q", r.Status, r.Body, r.Header.Get("Retry-After"))
	}
	_, tok := in.CreateWorkspaceRow("w", nil)
	if r := in.Do("GET", "/admin/liveness", tok, nil); r.Status != 403 {
		t.Fatalf("another principal has its own budget: %d", r.Status)
	}
}

// /metrics exposes request counts and latencies by route.
func TestPrometheusMetricsByRoute(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	in.Do("GET", "/org/tokens", in.Admin, nil)
	r := in.Do("GET", "/metrics", in.Admin, nil)
	body := string(r.Body)
	if r.Status != 200 ||
		!strings.Contains(body, `molecule_http_requests_total{method="GET",route="/org/tokens",status="200"} 1`) ||
		!strings.Contains(body, `molecule_http_request_duration_seconds_bucket{method="GET",route="/org/tokens"`) {
		t.Fatalf("metrics: %d\n%.2000s", r.Status, body)
	}
	pub := apptest.Start(t, apptest.Options{Env: map[string]string{"MOLECULE_METRICS_PUBLIC": "true"}})
	if r := pub.Do("GET", "/metrics", "", nil); r.Status != 200 {
		t.Fatalf("public metrics: %d", r.Status)
	}
}

// Every $ref in the OpenAPI document points at a component that exists, and
// every operation documents at least one response.
func TestOpenAPIReferencesResolve(t *testing.T) {
	doc, err := api.LoadOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, child := range x {
				if k == "$ref" {
					ref, _ := child.(string)
					if !resolves(doc, ref) {
						t.Errorf("%s: $ref %q does not resolve", path, ref)
					}
					continue
				}
				walk(path+"/"+k, child)
			}
		case []any:
			for i, child := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), child)
			}
		}
	}
	walk("", doc)
	for p, ops := range doc["paths"].(map[string]any) {
		for m, op := range ops.(map[string]any) {
			if m == "parameters" {
				continue
			}
			if rs, _ := op.(map[string]any)["responses"].(map[string]any); len(rs) == 0 {
				t.Errorf("%s %s documents no response", strings.ToUpper(m), p)
			}
		}
	}
}

func resolves(doc map[string]any, ref string) bool {
	if !strings.HasPrefix(ref, "#/") {
		return false
	}
	var cur any = doc
	for _, part := range strings.Split(ref[2:], "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[part]; !ok {
			return false
		}
	}
	return true
}
