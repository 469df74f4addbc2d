package githubapp

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/moleculesai/molecule/pkg/provisionhook"
)

func TestTokenSuccess(t *testing.T) {
	clock := newFakeClock()
	g := newFakeGitHub(t, clock.Now)
	p := newTestProvider(t, g, clock, nil)

	tok, exp, err := p.Token(context.Background())
	if err != nil {
		t.Fatalf("Token: %v (jwt errors: %v)", err, g.JWTErrors())
	}
	if tok != "ghs_fake01SECRETxyz" {
		t.Errorf("token = %q", tok)
	}
	if want := clock.Now().Add(time.Hour); !exp.Equal(want) {
		t.Errorf("expiresAt = %v, want %v", exp, want)
	}
	if errs := g.JWTErrors(); len(errs) != 0 {
		t.Errorf("fake GitHub rejected the JWT: %v", errs)
	}
}

func TestTokenEnterpriseBaseURL(t *testing.T) {
	clock := newFakeClock()
	g := newFakeGitHub(t, clock.Now)
	g.prefix = "/api/v3"
	srv := httptest.NewServer(g)
	defer srv.Close()
	p, err := New(Config{AppID: g.appID, InstallationID: g.installationID,
		PrivateKeyPEM: pkcs8PEM(t, testKey()), APIBaseURL: srv.URL + "/api/v3/",
		HTTPClient: srv.Client(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Token(context.Background()); err != nil {
		t.Fatalf("Token via GHES base with trailing slash: %v", err)
	}
}

func TestTokenCached(t *testing.T) {
	clock := newFakeClock()
	g := newFakeGitHub(t, clock.Now)
	p := newTestProvider(t, g, clock, nil)

	first, _, err := p.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(30 * time.Minute)
	second, _, err := p.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Errorf("second call returned a different token")
	}
	if n := g.Requests(); n != 1 {
		t.Errorf("GitHub saw %d requests, want 1", n)
	}
}

func TestTokenRefreshFiveMinutesBeforeExpiry(t *testing.T) {
	clock := newFakeClock()
	g := newFakeGitHub(t, clock.Now)
	p := newTestProvider(t, g, clock, nil)
	ctx := context.Background()

	first, exp1, err := p.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// One second before the refresh window: still cached.
	clock.Advance(time.Hour - 5*time.Minute - time.Second)
	if tok, _, _ := p.Token(ctx); tok != first || g.Requests() != 1 {
		t.Fatalf("refreshed too early (requests=%d)", g.Requests())
	}
	// Inside the window: a new exchange with a new JWT (the fake checks its
	// iat/exp against the advanced clock).
	clock.Advance(2 * time.Second)
	second, exp2, err := p.Token(ctx)
	if err != nil {
		t.Fatalf("refresh: %v (jwt errors: %v)", err, g.JWTErrors())
	}
	if second == first || !exp2.After(exp1) || g.Requests() != 2 {
		t.Errorf("want a fresh token: first=%q second=%q exp1=%v exp2=%v requests=%d", first, second, exp1, exp2, g.Requests())
	}
}

func TestTokenStaleCachedTokenServedWhenRefreshFails(t *testing.T) {
	clock := newFakeClock()
	g := newFakeGitHub(t, clock.Now)
	p := newTestProvider(t, g, clock, nil)
	first, exp, err := p.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// From now on GitHub fails.
	g.mu.Lock()
	g.respond = func(_ int, w http.ResponseWriter) { writeGitHubError(w, http.StatusBadGateway, "Server Error") }
	g.mu.Unlock()

	clock.Advance(time.Hour - 5*time.Minute + time.Second) // refresh due, 5 min left
	tok, gotExp, err := p.Token(context.Background())
	if err != nil || tok != first || !gotExp.Equal(exp) {
		t.Fatalf("refresh failure with 5 min left should serve the cached token: %q %v %v", tok, gotExp, err)
	}
	clock.Advance(4*time.Minute + 30*time.Second) // 30s left: too close
	if _, _, err := p.Token(context.Background()); !errors.Is(err, ErrUpstream) {
		t.Fatalf("err = %v, want ErrUpstream once the cached token is nearly expired", err)
	}
	if n := g.Requests(); n != 3 {
		t.Errorf("requests = %d, want 3 (failures are not cached)", n)
	}
}

// TestTokenConcurrentCallersShareOneRequest proves, inside a synctest
// bubble, that callers arriving during an exchange wait for it instead of
// starting their own.
func TestTokenConcurrentCallersShareOneRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newFakeGitHub(t, time.Now)
		g.block = make(chan struct{})
		p, err := New(Config{AppID: g.appID, InstallationID: g.installationID,
			PrivateKeyPEM: pkcs1PEM(testKey()), APIBaseURL: "http://github.invalid",
			HTTPClient: &http.Client{Transport: handlerTransport{g}}})
		if err != nil {
			t.Fatal(err)
		}
		const callers = 20
		type result struct {
			tok string
			err error
		}
		results := make(chan result, callers)
		for range callers {
			go func() {
				tok, _, err := p.Token(context.Background())
				results <- result{tok, err}
			}()
		}
		synctest.Wait() // every caller is blocked: one in GitHub, the rest on the flight
		if n := g.Requests(); n != 1 {
			t.Fatalf("GitHub saw %d requests while callers waited, want 1", n)
		}
		close(g.block)
		for range callers {
			r := <-results
			if r.err != nil || r.tok != "ghs_fake01SECRETxyz" {
				t.Errorf("caller got %q, %v", r.tok, r.err)
			}
		}
		if n := g.Requests(); n != 1 {
			t.Errorf("requests = %d, want 1", n)
		}
	})
}

// The same over a real socket, for the race detector.
func TestTokenConcurrentCallersRealServer(t *testing.T) {
	clock := newFakeClock()
	g := newFakeGitHub(t, clock.Now)
	g.block = make(chan struct{})
	g.arrived = make(chan struct{}, 64)
	p := newTestProvider(t, g, clock, nil)

	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			if _, _, err := p.Token(context.Background()); err != nil {
				errs <- err
			}
		})
	}
	<-g.arrived
	close(g.block)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := g.Requests(); n != 1 {
		t.Errorf("requests = %d, want 1", n)
	}
}

func TestTokenCallerCancellationDoesNotFailOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newFakeGitHub(t, time.Now)
		g.block = make(chan struct{})
		p, err := New(Config{AppID: g.appID, InstallationID: g.installationID,
			PrivateKeyPEM: pkcs1PEM(testKey()), APIBaseURL: "http://github.invalid",
			HTTPClient: &http.Client{Transport: handlerTransport{g}}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		leaderErr := make(chan error, 1)
		go func() {
			_, _, err := p.Token(ctx)
			leaderErr <- err
		}()
		follower := make(chan string, 1)
		go func() {
			tok, _, _ := p.Token(context.Background())
			follower <- tok
		}()
		synctest.Wait()
		cancel()
		if err := <-leaderErr; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled caller err = %v, want context.Canceled", err)
		}
		close(g.block)
		if tok := <-follower; tok != "ghs_fake01SECRETxyz" {
			t.Errorf("follower got %q after the first caller gave up", tok)
		}
		if n := g.Requests(); n != 1 {
			t.Errorf("requests = %d, want 1", n)
		}
		if _, _, err := p.Token(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("already-cancelled ctx: err = %v", err)
		}
	})
}

func TestTokenRefreshTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newFakeGitHub(t, time.Now)
		g.block = make(chan struct{})
		defer close(g.block)
		p, err := New(Config{AppID: g.appID, InstallationID: g.installationID,
			PrivateKeyPEM: pkcs1PEM(testKey()), APIBaseURL: "http://github.invalid",
			RefreshTimeout: 5 * time.Second,
			HTTPClient:     &http.Client{Transport: ctxAwareTransport{handlerTransport{g}}}})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = p.Token(context.Background())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want a deadline error from the refresh timeout", err)
		}
	})
}

// ctxAwareTransport gives up when the request context ends, as a real
// transport does, while the wrapped in-process handler keeps blocking.
type ctxAwareTransport struct{ next http.RoundTripper }

func (c ctxAwareTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	type res struct {
		resp *http.Response
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		resp, err := c.next.RoundTrip(r)
		ch <- res{resp, err}
	}()
	select {
	case x := <-ch:
		return x.resp, x.err
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
}

func TestTokenErrors(t *testing.T) {
	const bodyMarker = "UPSTREAM-BODY-MARKER"
	const leakedToken = "ghs_LEAKEDTOKEN123"
	status := func(code int) func(int, http.ResponseWriter) {
		return func(_ int, w http.ResponseWriter) { writeGitHubError(w, code, bodyMarker+" "+leakedToken) }
	}
	raw := func(code int, body string) func(int, http.ResponseWriter) {
		return func(_ int, w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_, _ = w.Write([]byte(body))
		}
	}
	huge := `{"token":"` + leakedToken + `","expires_at":"2030-01-01T00:00:00Z","pad":"` +
		strings.Repeat("x", maxResponseBytes) + `"}`
	cases := []struct {
		name    string
		respond func(int, http.ResponseWriter)
		wrongKy bool
		want    error
	}{
		{name: "401 from GitHub", respond: status(http.StatusUnauthorized), want: ErrUnauthorized},
		{name: "403 from GitHub", respond: status(http.StatusForbidden), want: ErrUnauthorized},
		{name: "404 installation", respond: status(http.StatusNotFound), want: ErrInstallationNotFound},
		{name: "500", respond: status(http.StatusInternalServerError), want: ErrUpstream},
		{name: "503 non-JSON", respond: raw(http.StatusServiceUnavailable, "<html>"+bodyMarker+"</html>"), want: ErrUpstream},
		{name: "429", respond: status(http.StatusTooManyRequests), want: ErrUpstream},
		{name: "malformed JSON", respond: raw(http.StatusCreated, `{"token":"`+leakedToken+`", `+bodyMarker), want: ErrBadResponse},
		{name: "token of wrong type", respond: raw(http.StatusCreated, `{"token":12345,"expires_at":"2030-01-01T00:00:00Z"}`), want: ErrBadResponse},
		{name: "missing token", respond: raw(http.StatusCreated, `{"expires_at":"2030-01-01T00:00:00Z","note":"`+bodyMarker+`"}`), want: ErrBadResponse},
		{name: "missing expires_at", respond: raw(http.StatusCreated, `{"token":"`+leakedToken+`"}`), want: ErrBadResponse},
		{name: "bad expires_at", respond: raw(http.StatusCreated, `{"token":"`+leakedToken+`","expires_at":"tomorrow `+bodyMarker+`"}`), want: ErrBadResponse},
		{name: "oversized body", respond: raw(http.StatusCreated, huge), want: ErrBadResponse},
		{name: "oversized error body", respond: raw(http.StatusBadGateway, huge), want: ErrUpstream},
		{name: "JWT signed with the wrong key", wrongKy: true, want: ErrUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			g := newFakeGitHub(t, clock.Now)
			g.respond = tc.respond
			if tc.wrongKy {
				g.pub = &otherKey().PublicKey
			}
			logs := &logBuffer{}
			p := newTestProvider(t, g, clock, logs)
			tok, exp, err := p.Token(context.Background())
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tok != "" || !exp.IsZero() {
				t.Errorf("got token %q / %v alongside an error", tok, exp)
			}
			msg := err.Error()
			if strings.Contains(msg, bodyMarker) || strings.Contains(msg, leakedToken) || strings.Contains(msg, "xxxx") {
				t.Errorf("error message leaks the upstream body: %q", msg)
			}
			for _, s := range g.Secrets() {
				if strings.Contains(msg, s) || strings.Contains(logs.String(), s) {
					t.Errorf("a token or JWT leaked into the error or logs")
				}
			}
			if strings.Contains(logs.String(), leakedToken) {
				t.Errorf("logs contain the token from the body: %s", logs.String())
			}
			// Errors are not cached: the next call asks GitHub again.
			_, _, _ = p.Token(context.Background())
			if n := g.Requests(); n != 2 {
				t.Errorf("requests = %d, want 2", n)
			}
		})
	}
}

func TestTokenTransportError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	p, err := New(Config{AppID: 1, InstallationID: 2, PrivateKeyPEM: pkcs1PEM(testKey()), APIBaseURL: url})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = p.Token(context.Background())
	if err == nil || strings.Contains(err.Error(), "Bearer") || strings.Contains(err.Error(), "eyJ") {
		t.Errorf("err = %v, want a transport error without credentials", err)
	}
}

// TestTokenNeverLogged runs success, cache hits, refresh, stale fallback and
// failure with a debug-level logger and checks no token or JWT shows up.
func TestTokenNeverLogged(t *testing.T) {
	clock := newFakeClock()
	g := newFakeGitHub(t, clock.Now)
	logs := &logBuffer{}
	p := newTestProvider(t, g, clock, logs)
	ctx := context.Background()
	var got []string
	for i := range 3 {
		tok, _, err := p.Token(ctx)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		got = append(got, tok)
		clock.Advance(56 * time.Minute)
	}
	g.mu.Lock()
	g.respond = func(_ int, w http.ResponseWriter) { writeGitHubError(w, http.StatusInternalServerError, "boom") }
	g.mu.Unlock()
	_, _, _ = p.Token(ctx) // stale fallback
	clock.Advance(time.Hour)
	_, _, _ = p.Token(ctx) // hard failure
	if err := p.MutateEnv(ctx, provisionhook.WorkspaceInfo{ID: "w"}, map[string]string{}); err != nil {
		t.Fatal(err)
	}

	out := logs.String()
	if !strings.Contains(out, "refreshed") || !strings.Contains(out, "refresh failed") {
		t.Fatalf("expected refresh and failure log lines, got:\n%s", out)
	}
	secrets := append(g.Secrets(), got...)
	if len(secrets) < 6 {
		t.Fatalf("expected tokens and JWTs to check, got %d", len(secrets))
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("secret %q… appears in logs", s[:8])
		}
	}
	if strings.Contains(out, "ghs_") || strings.Contains(out, "eyJ") {
		t.Errorf("token-shaped text in logs:\n%s", out)
	}
}

func TestMutateEnv(t *testing.T) {
	p, err := New(Config{AppID: 1, InstallationID: 2, PrivateKeyPEM: pkcs1PEM(testKey())})
	if err != nil {
		t.Fatal(err)
	}
	ws := provisionhook.WorkspaceInfo{ID: "w1", Name: "Dev"}
	env := map[string]string{"WORKSPACE_ID": "w1"}
	if err := p.MutateEnv(context.Background(), ws, env); err != nil {
		t.Fatal(err)
	}
	if env[CredentialHelperEnv] != "platform" || len(env) != 2 {
		t.Errorf("env = %v, want only %s=platform added", env, CredentialHelperEnv)
	}
	for k, v := range env {
		if strings.Contains(strings.ToUpper(k), "TOKEN") || strings.HasPrefix(v, "ghs_") {
			t.Errorf("secret-looking entry injected: %s", k)
		}
	}
	// An operator's value (even empty) wins.
	env = map[string]string{CredentialHelperEnv: ""}
	_ = p.MutateEnv(context.Background(), ws, env)
	if env[CredentialHelperEnv] != "" {
		t.Errorf("existing value overwritten: %q", env[CredentialHelperEnv])
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.MutateEnv(ctx, ws, map[string]string{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: err = %v", err)
	}

	// Registered as a hook, it is the platform's token provider.
	r := provisionhook.NewRegistry()
	r.Register(p)
	if r.FirstTokenProvider() != provisionhook.TokenProvider(p) {
		t.Error("provider is not found as the registry's TokenProvider")
	}
	if p.Name() != "github-app" {
		t.Errorf("Name = %q", p.Name())
	}
}

func TestSignAppJWT(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	jwt, err := signAppJWT(testKey(), 99, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyAppJWT(jwt, &testKey().PublicKey, 99, now); err != nil {
		t.Errorf("own JWT does not verify: %v", err)
	}
	if err := verifyAppJWT(jwt, &otherKey().PublicKey, 99, now); err == nil {
		t.Error("verified with the wrong public key")
	}
	if err := verifyAppJWT(jwt, &testKey().PublicKey, 100, now); err == nil {
		t.Error("verified with the wrong app id")
	}
	if err := verifyAppJWT(jwt, &testKey().PublicKey, 99, now.Add(10*time.Minute)); err == nil {
		t.Error("verified after exp")
	}
	// Tampering with the claims breaks the signature.
	parts := strings.Split(jwt, ".")
	forged := parts[0] + "." + strings.ToLower(parts[1]) + "." + parts[2]
	if err := verifyAppJWT(forged, &testKey().PublicKey, 99, now); err == nil {
		t.Error("forged claims verified")
	}
}
