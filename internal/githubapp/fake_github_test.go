package githubapp

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Keys are expensive to generate; tests share two.
var (
	testKey  = sync.OnceValue(func() *rsa.PrivateKey { return mustRSAKey() })
	otherKey = sync.OnceValue(func() *rsa.PrivateKey { return mustRSAKey() })
)

func mustRSAKey() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

func pkcs1PEM(k *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

func pkcs8PEM(t testing.TB, k any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// fakeClock is a settable clock shared by the provider and the fake GitHub.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fakeGitHub implements POST /app/installations/{id}/access_tokens as
// documented: it requires the API headers, verifies the app JWT (RS256
// signature against the app's public key, iss, iat/exp window) and answers
// 201 {token, expires_at, permissions, repository_selection}.
type fakeGitHub struct {
	t              testing.TB
	pub            *rsa.PublicKey
	appID          int64
	installationID int64
	prefix         string // "/api/v3" for GitHub Enterprise Server
	now            func() time.Time
	ttl            time.Duration

	// respond, when set, replaces the success answer for request n (1-based)
	// after the JWT was verified.
	respond func(n int, w http.ResponseWriter)
	// block, when set, is waited on before answering.
	block chan struct{}
	// arrived, when set, receives a value as each request arrives.
	arrived chan struct{}

	mu       sync.Mutex
	requests int
	jwtErrs  []error
	issued   []string // tokens and JWTs, to check they never leak
}

func newFakeGitHub(t testing.TB, clock func() time.Time) *fakeGitHub {
	return &fakeGitHub{t: t, pub: &testKey().PublicKey, appID: 4242, installationID: 777,
		now: clock, ttl: time.Hour}
}

func (g *fakeGitHub) Requests() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.requests
}

func (g *fakeGitHub) Secrets() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.issued...)
}

func (g *fakeGitHub) JWTErrors() []error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]error(nil), g.jwtErrs...)
}

func writeGitHubError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{
		"message":           msg,
		"documentation_url": "https://docs.github.com/rest",
	})
}

func (g *fakeGitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	g.requests++
	n := g.requests
	respond := g.respond
	g.mu.Unlock()
	if g.arrived != nil {
		g.arrived <- struct{}{}
	}
	if g.block != nil {
		<-g.block
	}
	w.Header().Set("X-GitHub-Request-Id", fmt.Sprintf("REQ:%d", n))

	wantPath := fmt.Sprintf("%s/app/installations/%d/access_tokens", g.prefix, g.installationID)
	if r.URL.Path != wantPath {
		writeGitHubError(w, http.StatusNotFound, "Not Found")
		return
	}
	if r.Method != http.MethodPost {
		writeGitHubError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	if r.Header.Get("Accept") != "application/vnd.github+json" ||
		r.Header.Get("X-GitHub-Api-Version") != "2022-11-28" || r.Header.Get("User-Agent") == "" {
		writeGitHubError(w, http.StatusBadRequest, "missing API headers")
		return
	}
	jwt, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		writeGitHubError(w, http.StatusUnauthorized, "Requires authentication")
		return
	}
	g.mu.Lock()
	g.issued = append(g.issued, jwt)
	g.mu.Unlock()
	if err := verifyAppJWT(jwt, g.pub, g.appID, g.now()); err != nil {
		g.mu.Lock()
		g.jwtErrs = append(g.jwtErrs, err)
		g.mu.Unlock()
		writeGitHubError(w, http.StatusUnauthorized, "A JSON web token could not be decoded")
		return
	}
	if respond != nil {
		respond(n, w)
		return
	}
	tok := fmt.Sprintf("ghs_fake%02dSECRETxyz", n)
	g.mu.Lock()
	g.issued = append(g.issued, tok)
	g.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token":                tok,
		"expires_at":           g.now().Add(g.ttl).UTC().Format(time.RFC3339),
		"permissions":          map[string]string{"contents": "write", "metadata": "read"},
		"repository_selection": "all",
	})
}

// verifyAppJWT checks a GitHub App JWT the way GitHub does: RS256 header,
// valid signature, iss = app id, iat not in the future (60s leeway) and a
// lifetime of at most 10 minutes that has not ended.
func verifyAppJWT(tok string, pub *rsa.PublicKey, appID int64, now time.Time) error {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return fmt.Errorf("want 3 segments, got %d", len(parts))
	}
	dec := base64.RawURLEncoding
	hb, err := dec.DecodeString(parts[0])
	if err != nil {
		return fmt.Errorf("header encoding: %w", err)
	}
	var hdr map[string]any
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return fmt.Errorf("header json: %w", err)
	}
	if hdr["alg"] != "RS256" {
		return fmt.Errorf("alg = %v, want RS256", hdr["alg"])
	}
	if typ, ok := hdr["typ"]; ok && typ != "JWT" {
		return fmt.Errorf("typ = %v", typ)
	}
	sig, err := dec.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("signature encoding: %w", err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	cb, err := dec.DecodeString(parts[1])
	if err != nil {
		return fmt.Errorf("claims encoding: %w", err)
	}
	var claims struct {
		IAT *json.Number `json:"iat"`
		EXP *json.Number `json:"exp"`
		ISS any          `json:"iss"`
	}
	d := json.NewDecoder(bytes.NewReader(cb))
	d.UseNumber()
	if err := d.Decode(&claims); err != nil {
		return fmt.Errorf("claims json: %w", err)
	}
	if claims.ISS != strconv.FormatInt(appID, 10) {
		return fmt.Errorf("iss = %#v, want %q", claims.ISS, strconv.FormatInt(appID, 10))
	}
	if claims.IAT == nil || claims.EXP == nil {
		return errors.New("iat and exp are required")
	}
	iat, err1 := claims.IAT.Int64()
	exp, err2 := claims.EXP.Int64()
	if err1 != nil || err2 != nil {
		return errors.New("iat/exp must be integers")
	}
	n := now.Unix()
	switch {
	case iat > n:
		return fmt.Errorf("iat %d is in the future (now %d)", iat, n)
	case iat < n-120:
		return fmt.Errorf("iat %d is too old (now %d)", iat, n)
	case exp <= n:
		return fmt.Errorf("exp %d has passed (now %d)", exp, n)
	case exp-iat > 600:
		return fmt.Errorf("lifetime %ds exceeds 10 minutes", exp-iat)
	}
	return nil
}

// handlerTransport serves requests in-process, for testing/synctest bubbles
// where real sockets would not count as durably blocked.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

// logBuffer is a concurrency-safe buffer for a slog handler.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func debugLogger(b *logBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newTestProvider wires a Provider to g served by a real httptest server.
func newTestProvider(t *testing.T, g *fakeGitHub, clock *fakeClock, logs *logBuffer) *Provider {
	t.Helper()
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	cfg := Config{
		AppID:          g.appID,
		InstallationID: g.installationID,
		PrivateKeyFile: writeFile(t, "app.pem", pkcs1PEM(testKey())),
		APIBaseURL:     srv.URL + g.prefix,
		HTTPClient:     srv.Client(),
		Now:            clock.Now,
	}
	if logs != nil {
		cfg.Logger = debugLogger(logs)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}
