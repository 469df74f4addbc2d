package artifacts

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
)

// getRepo is the call most error tests use: it expects a result.
func getRepo(c *Client) error {
	_, err := c.GetRepo(context.Background(), "molecule-ws-1")
	return err
}

// TestCloudflareClientErrors: a 4xx v4 envelope is Cloudflare's own answer;
// its status and joined messages pass through.
func TestCloudflareClientErrors(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		errs    []ErrorDetail
		wantMsg string
	}{
		{"not found", 404, []ErrorDetail{{Code: 10007, Message: "repository not found"}}, "repository not found"},
		{"several messages", 400, []ErrorDetail{
			{Code: 1, Message: "name taken"}, {Code: 2, Message: " "}, {Code: 3, Message: "description too long "},
		}, "name taken; description too long"},
		{"conflict without messages", 409, nil, "conflict"},
		{"forbidden", 403, []ErrorDetail{{Code: 9109, Message: "Unauthorized to access requested resource"}},
			"Unauthorized to access requested resource"},
		{"rate limited", 429, []ErrorDetail{{Code: 971, Message: "Please wait and consider throttling your request speed"}},
			"Please wait and consider throttling your request speed"},
		{"unnamed 4xx status", 499, nil, "request rejected"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newFake(t, respondWith(tc.status, false, tc.errs, nil))
			err := getRepo(c)
			status, msg, ok := IsClientError(err)
			if !ok || status != tc.status || msg != tc.wantMsg {
				t.Fatalf("IsClientError = (%d, %q, %v), want (%d, %q, true); err=%v",
					status, msg, ok, tc.status, tc.wantMsg, err)
			}
			if IsUpstreamFailure(err) {
				t.Error("a Cloudflare 4xx classified as an upstream failure")
			}
			var ae *APIError
			if !errors.As(err, &ae) || len(ae.Errors) != len(tc.errs) {
				t.Fatalf("want *APIError with %d errors, got %#v", len(tc.errs), err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("Error() = %q lacks the message", err.Error())
			}
			// A 4xx answer is for the method that expects no result too.
			if _, _, ok := IsClientError(c.DeleteRepo(context.Background(), "x")); !ok {
				t.Error("DeleteRepo did not surface the 4xx")
			}
		})
	}
}

// TestUpstreamFailuresHideDetail: 5xx answers and anything that is not a
// genuine Cloudflare 4xx envelope are upstream failures whose text stays in
// Detail and out of Error().
func TestUpstreamFailuresHideDetail(t *testing.T) {
	const secret = "pg at 10.1.2.3:5432 refused; stack: main.go:42"
	tests := []struct {
		name    string
		respond http.HandlerFunc
		status  int // expected APIError.StatusCode
	}{
		{"500 envelope", respondWith(500, false, []ErrorDetail{{Code: 10000, Message: secret}}, nil), 500},
		{"502 html", respondRaw(502, "text/html", "<html>"+secret+"</html>"), 502},
		{"503 plain", respondRaw(503, "text/plain", secret), 503},
		{"500 success true", respondWith(500, true, []ErrorDetail{{Message: secret}}, repoResult("r")), 500},
		{"404 html from a proxy", respondRaw(404, "text/html", "<h1>"+secret+"</h1>"), 404},
		{"400 json not an envelope", respondRaw(400, "application/json", `{"error":"`+secret+`"}`), 400},
		{"400 success true", respondWith(400, true, []ErrorDetail{{Message: secret}}, nil), 400},
		{"200 success false", respondWith(200, false, []ErrorDetail{{Code: 7003, Message: secret}}, nil), 200},
		{"200 non-json", respondRaw(200, "text/html", "<p>"+secret+"</p>"), 200},
		{"200 empty body", respondRaw(200, "", ""), 200},
		{"200 empty object", respondRaw(200, "application/json", `{}`), 200},
		{"200 array", respondRaw(200, "application/json", `[{"success":true}]`), 200},
		{"200 success as string", respondRaw(200, "application/json", `{"success":"true","result":{}}`), 200},
		{"200 trailing garbage", respondRaw(200, "application/json", `{"success":true,"result":{"name":"r"}}`+secret), 200},
		{"200 null result", respondWith(200, true, nil, nil), 200},
		{"200 result wrong type", respondWith(200, true, nil, []string{secret}), 200},
		{"200 bad timestamp", respondWith(200, true, nil, map[string]any{"name": "r", "created_at": secret}), 200},
		{"302 redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://elsewhere.example/"+secret, http.StatusFound)
		}, 302},
		{"204 where a result is due", respondRaw(204, "", ""), 204},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, f := newFake(t, tc.respond)
			err := getRepo(c)
			if err == nil {
				t.Fatal("want an error")
			}
			assertUpstream(t, err)
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("want *APIError, got %T %v", err, err)
			}
			if ae.StatusCode != tc.status || ae.Message != "upstream service error" {
				t.Errorf("APIError = {%d %q}, want {%d %q}", ae.StatusCode, ae.Message, tc.status, "upstream service error")
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(ae.Message, secret) {
				t.Errorf("upstream text leaked into the user-facing error: %q", err.Error())
			}
			if len(f.Calls()) != 1 {
				t.Errorf("fake saw %d calls (a redirect was followed?)", len(f.Calls()))
			}
		})
	}

	// The detail is kept for the server log.
	c, _ := newFake(t, respondWith(500, false, []ErrorDetail{{Code: 10000, Message: secret}}, nil))
	var ae *APIError
	if err := getRepo(c); !errors.As(err, &ae) || ae.Detail != secret {
		t.Errorf("Detail = %q, want the upstream message", ae.Detail)
	}
	c, _ = newFake(t, respondRaw(502, "text/html", strings.Repeat("x", 5000)))
	if err := getRepo(c); !errors.As(err, &ae) || len(ae.Detail) != maxDetail {
		t.Errorf("raw detail not bounded: %d bytes", len(ae.Detail))
	}
}

func assertUpstream(t *testing.T, err error) {
	t.Helper()
	if _, _, ok := IsClientError(err); ok {
		t.Errorf("IsClientError true for an upstream failure: %v", err)
	}
	if !IsUpstreamFailure(err) {
		t.Errorf("IsUpstreamFailure false for %v", err)
	}
	if errors.Is(err, ErrInvalidArgument) {
		t.Errorf("upstream failure wraps ErrInvalidArgument: %v", err)
	}
}

// envelopeOfSize returns a valid success envelope padded with JSON
// whitespace to exactly n bytes.
func envelopeOfSize(t *testing.T, n int) string {
	t.Helper()
	head := `{"success":true,"errors":[],"messages":[],"result":{"name":"r","created_at":"2026-11-27T04:00:00Z"}`
	if n < len(head)+1 {
		t.Fatalf("size %d too small", n)
	}
	return head + strings.Repeat(" ", n-len(head)-1) + "}"
}

// TestResponseCapBoundary: exactly 1 MiB is read and accepted; one byte
// more is an error, not a truncated success.
func TestResponseCapBoundary(t *testing.T) {
	c, _ := newFake(t, respondRaw(200, "application/json", envelopeOfSize(t, MaxResponseBytes)))
	if err := getRepo(c); err != nil {
		t.Fatalf("1 MiB body rejected: %v", err)
	}
	c, _ = newFake(t, respondRaw(200, "application/json", envelopeOfSize(t, MaxResponseBytes+1)))
	err := getRepo(c)
	if !errors.Is(err, ErrResponseTooLarge) {
		t.Fatalf("1 MiB + 1 body: err = %v, want ErrResponseTooLarge", err)
	}
	assertUpstream(t, err)
}

// TestOversizedBodyBoundedMemory: an upstream streaming far more than the cap
// (as a 200, a 4xx envelope or a 5xx) gets an error, and the client does not
// buffer the stream.
func TestOversizedBodyBoundedMemory(t *testing.T) {
	const stream = 256 << 20 // what the hostile upstream offers
	chunk := []byte(strings.Repeat("a", 64<<10))
	endless := func(status int, prefix string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = fmt.Fprint(w, prefix)
			for sent := 0; sent < stream; sent += len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return // the client hung up, as it should
				}
			}
		}
	}
	tests := []struct {
		name    string
		respond http.HandlerFunc
	}{
		{"200 envelope", endless(200, `{"success":true,"result":{"description":"`)},
		{"404 envelope", endless(404, `{"success":false,"errors":[{"code":1,"message":"`)},
		{"500 html", endless(500, `<html>`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newFake(t, tc.respond)
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := getRepo(c)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrResponseTooLarge) {
				t.Fatalf("err = %v, want ErrResponseTooLarge", err)
			}
			assertUpstream(t, err)
			// Reading 1 MiB costs a few MiB of slice growth; buffering the
			// stream would cost hundreds.
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
				t.Errorf("allocated %d MiB reading a capped body", grew>>20)
			}
		})
	}
}

// TestDroppedConnection: the upstream accepts the request and closes the
// socket, before any response or in the middle of the body.
func TestDroppedConnection(t *testing.T) {
	hijack := func(partial string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("hijack: %v", err)
				return
			}
			if partial != "" {
				_, _ = buf.WriteString(partial)
				_ = buf.Flush()
			}
			_ = conn.Close()
		}
	}
	tests := []struct {
		name    string
		respond http.HandlerFunc
		call    func(*Client) error
	}{
		{"get, no response", hijack(""), getRepo},
		{"create, no response", hijack(""), func(c *Client) error {
			_, err := c.CreateRepo(context.Background(), CreateRepoRequest{Name: "r"})
			return err
		}},
		{"delete, no response", hijack(""), func(c *Client) error {
			return c.DeleteRepo(context.Background(), "r")
		}},
		{"get, body cut short", hijack("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" +
			"Content-Length: 500\r\n\r\n{\"success\":true,\"result\":{"), getRepo},
		{"4xx, body cut short", hijack("HTTP/1.1 404 Not Found\r\nContent-Length: 500\r\n\r\n" +
			`{"success":false,"errors":[{"code":1,"message":"gone"}]`), getRepo},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newFake(t, tc.respond)
			err := tc.call(c)
			if err == nil {
				t.Fatal("want an error")
			}
			assertUpstream(t, err)
			var ae *APIError
			if errors.As(err, &ae) {
				t.Errorf("a transport failure became an APIError: %v", err)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("error mentions the API token: %v", err)
			}
		})
	}
}

// TestUnreachableAndCanceled: no server at all, and a context the caller
// already gave up on, are upstream failures too.
func TestUnreachableAndCanceled(t *testing.T) {
	c, f := newFake(t, respondWith(200, true, nil, repoResult("r")))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.GetRepo(ctx, "r")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	assertUpstream(t, err)
	if n := len(f.Calls()); n != 0 {
		t.Errorf("canceled request reached the fake %d times", n)
	}

	dead := New("http://127.0.0.1:1", testNamespace, testToken, nil)
	err = getRepo(dead)
	if err == nil {
		t.Fatal("want an error from a closed port")
	}
	assertUpstream(t, err)
}

// TestInvalidArgumentsSendNothing: arguments that can never be valid are
// refused before any request, and are not upstream failures.
func TestInvalidArgumentsSendNothing(t *testing.T) {
	ctx := context.Background()
	long := strings.Repeat("a", 64)
	tests := []struct {
		name string
		call func(*Client) error
	}{
		{"create empty name", func(c *Client) error { _, err := c.CreateRepo(ctx, CreateRepoRequest{}); return err }},
		{"create bad name", func(c *Client) error {
			_, err := c.CreateRepo(ctx, CreateRepoRequest{Name: "-dash-first"})
			return err
		}},
		{"create long name", func(c *Client) error { _, err := c.CreateRepo(ctx, CreateRepoRequest{Name: long}); return err }},
		{"import bad name", func(c *Client) error {
			_, err := c.ImportRepo(ctx, ImportRepoRequest{Name: "a/b", URL: "https://github.com/o/r"})
			return err
		}},
		{"import http", func(c *Client) error {
			_, err := c.ImportRepo(ctx, ImportRepoRequest{Name: "r", URL: "http://github.com/o/r"})
			return err
		}},
		{"import file", func(c *Client) error {
			_, err := c.ImportRepo(ctx, ImportRepoRequest{Name: "r", URL: "file:///etc/passwd"})
			return err
		}},
		{"import negative depth", func(c *Client) error {
			_, err := c.ImportRepo(ctx, ImportRepoRequest{Name: "r", URL: "https://github.com/o/r", Depth: -1})
			return err
		}},
		{"fork bad name", func(c *Client) error {
			_, err := c.ForkRepo(ctx, "src", ForkRepoRequest{Name: "has space"})
			return err
		}},
		{"fork empty source", func(c *Client) error {
			_, err := c.ForkRepo(ctx, "", ForkRepoRequest{Name: "ok"})
			return err
		}},
		{"get dotdot", func(c *Client) error { _, err := c.GetRepo(ctx, ".."); return err }},
		{"get empty", func(c *Client) error { _, err := c.GetRepo(ctx, ""); return err }},
		{"delete dot", func(c *Client) error { return c.DeleteRepo(ctx, ".") }},
		{"token bad scope", func(c *Client) error {
			_, err := c.CreateToken(ctx, "r", CreateTokenRequest{Scope: "admin"})
			return err
		}},
		{"token empty scope", func(c *Client) error { _, err := c.CreateToken(ctx, "r", CreateTokenRequest{}); return err }},
		{"token ttl over max", func(c *Client) error {
			_, err := c.CreateToken(ctx, "r", CreateTokenRequest{Scope: ScopeRead, TTLSeconds: MaxTokenTTLSeconds + 1})
			return err
		}},
		{"token negative ttl", func(c *Client) error {
			_, err := c.CreateToken(ctx, "r", CreateTokenRequest{Scope: ScopeRead, TTLSeconds: -5})
			return err
		}},
		{"revoke empty id", func(c *Client) error { return c.RevokeToken(ctx, "r", "") }},
		{"revoke dotdot id", func(c *Client) error { return c.RevokeToken(ctx, "r", "..") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, f := newFake(t, respondWith(200, true, nil, repoResult("r")))
			err := tc.call(c)
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("err = %v, want ErrInvalidArgument", err)
			}
			if IsUpstreamFailure(err) {
				t.Error("an argument error classified as an upstream failure")
			}
			if _, _, ok := IsClientError(err); ok {
				t.Error("an argument error classified as a Cloudflare 4xx")
			}
			if n := len(f.Calls()); n != 0 {
				t.Errorf("fake received %d calls", n)
			}
		})
	}
}

func TestErrorClassifiersOnNilAndForeign(t *testing.T) {
	if IsUpstreamFailure(nil) {
		t.Error("nil is an upstream failure")
	}
	if _, _, ok := IsClientError(nil); ok {
		t.Error("nil is a client error")
	}
	foreign := errors.New("something else")
	if !IsUpstreamFailure(foreign) {
		t.Error("a foreign error must map to 502")
	}
	// Wrapping keeps the classification.
	wrapped := fmt.Errorf("attach repo: %w", &APIError{StatusCode: 409, Message: "exists", Cloudflare: true})
	if s, m, ok := IsClientError(wrapped); !ok || s != 409 || m != "exists" {
		t.Errorf("wrapped 4xx lost: %d %q %v", s, m, ok)
	}
	// A hand-built 5xx with Cloudflare set is still not a client error.
	if _, _, ok := IsClientError(&APIError{StatusCode: 503, Message: "x", Cloudflare: true}); ok {
		t.Error("5xx reported as a client error")
	}
}
