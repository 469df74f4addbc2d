package artifacts

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

const (
	testToken     = "cf-api-token-s3cret"
	testNamespace = "molecule-prod"
)

// call is one request as the fake Cloudflare saw it.
type call struct {
	Method      string
	EscapedPath string
	Auth        string
	ContentType string
	Body        map[string]any // nil when the request had no body
}

// fakeCF stands in for the Artifacts API. Each test gives it a responder;
// it records every request so tests can prove what was (or was not) sent.
type fakeCF struct {
	t       *testing.T
	mu      sync.Mutex
	calls   []call
	respond http.HandlerFunc
}

func newFake(t *testing.T, respond http.HandlerFunc) (*Client, *fakeCF) {
	t.Helper()
	f := &fakeCF{t: t, respond: respond}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	// A nil http.Client makes every test exercise the default one New
	// builds (timeout, no redirects).
	return New(srv.URL, testNamespace, testToken, nil), f
}

func (f *fakeCF) serve(w http.ResponseWriter, r *http.Request) {
	c := call{
		Method:      r.Method,
		EscapedPath: r.URL.EscapedPath(),
		Auth:        r.Header.Get("Authorization"),
		ContentType: r.Header.Get("Content-Type"),
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		f.t.Errorf("fake: read request body: %v", err)
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &c.Body); err != nil {
			f.t.Errorf("fake: request body is not a JSON object: %v: %s", err, raw)
		}
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
	f.respond(w, r)
}

func (f *fakeCF) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

// writeEnvelope answers in the Cloudflare v4 shape.
func writeEnvelope(w http.ResponseWriter, status int, success bool, errs []ErrorDetail, result any) {
	if errs == nil {
		errs = []ErrorDetail{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"success":  success,
		"errors":   errs,
		"messages": []any{},
		"result":   result,
	})
}

// respondWith returns a responder that always answers the same envelope.
func respondWith(status int, success bool, errs []ErrorDetail, result any) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		writeEnvelope(w, status, success, errs, result)
	}
}

// respondRaw returns a responder that writes body verbatim.
func respondRaw(status int, contentType, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}
