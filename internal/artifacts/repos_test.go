package artifacts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	created = time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)
	updated = created.Add(time.Minute)
	expires = created.Add(time.Hour)
)

func repoResult(name string) map[string]any {
	return map[string]any{
		"id":             "r-" + name,
		"name":           name,
		"namespace":      testNamespace,
		"description":    "work of agent 7",
		"remote_url":     "https://x:tok@artifacts.example/" + testNamespace + "/" + name + ".git",
		"default_branch": "main",
		"read_only":      true,
		"created_at":     created.Format(time.RFC3339),
		"updated_at":     updated.Format(time.RFC3339),
	}
}

func wantRepo(name string) *Repo {
	return &Repo{
		ID:            "r-" + name,
		Name:          name,
		Namespace:     testNamespace,
		Description:   "work of agent 7",
		RemoteURL:     "https://x:tok@artifacts.example/" + testNamespace + "/" + name + ".git",
		DefaultBranch: "main",
		ReadOnly:      true,
		CreatedAt:     created,
		UpdatedAt:     updated,
	}
}

var tokenResult = map[string]any{
	"id":         "tok-1",
	"token":      "git-secret-123",
	"scope":      "write",
	"expires_at": expires.Format(time.RFC3339),
	"remote_url": "https://x:git-secret-123@artifacts.example/molecule-prod/repo.git",
}

var wantToken = &Token{
	ID:        "tok-1",
	Token:     "git-secret-123",
	Scope:     "write",
	ExpiresAt: expires,
	RemoteURL: "https://x:git-secret-123@artifacts.example/molecule-prod/repo.git",
}

// TestMethodsSuccess drives every method against the fake and checks the
// request on the wire (method, escaped path, bearer, JSON body) and the
// decoded result.
func TestMethodsSuccess(t *testing.T) {
	base := "/namespaces/" + testNamespace + "/repos"
	tests := []struct {
		name     string
		result   any
		call     func(context.Context, *Client) (any, error)
		method   string
		path     string
		body     map[string]any // nil: no request body
		want     any
		wantNil  bool // the method returns only an error
		noResult bool // the fake answers 204 with no body
	}{
		{
			name:   "create",
			result: repoResult("molecule-ws-1"),
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.CreateRepo(ctx, CreateRepoRequest{Name: "molecule-ws-1", Description: "d", ReadOnly: true})
			},
			method: http.MethodPost,
			path:   base,
			body:   map[string]any{"name": "molecule-ws-1", "description": "d", "read_only": true},
			want:   wantRepo("molecule-ws-1"),
		},
		{
			name:   "create minimal",
			result: repoResult("r"),
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.CreateRepo(ctx, CreateRepoRequest{Name: "r"})
			},
			method: http.MethodPost,
			path:   base,
			body:   map[string]any{"name": "r", "read_only": false},
			want:   wantRepo("r"),
		},
		{
			name:   "import",
			result: repoResult("imported"),
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.ImportRepo(ctx, ImportRepoRequest{
					Name: "imported", Description: "from gh", URL: "https://github.com/org/repo.git",
					Branch: "dev", Depth: 5,
				})
			},
			method: http.MethodPost,
			path:   base + "/import",
			body: map[string]any{
				"name": "imported", "description": "from gh", "read_only": false,
				"url": "https://github.com/org/repo.git", "branch": "dev", "depth": float64(5),
			},
			want: wantRepo("imported"),
		},
		{
			name:   "get",
			result: repoResult("molecule-ws-1"),
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.GetRepo(ctx, "molecule-ws-1")
			},
			method: http.MethodGet,
			path:   base + "/molecule-ws-1",
			want:   wantRepo("molecule-ws-1"),
		},
		{
			name:   "fork",
			result: repoResult("fork-1"),
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.ForkRepo(ctx, "molecule-ws-1", ForkRepoRequest{
					Name: "fork-1", Description: "try", ReadOnly: true, DefaultBranchOnly: true,
				})
			},
			method: http.MethodPost,
			path:   base + "/molecule-ws-1/fork",
			body: map[string]any{
				"name": "fork-1", "description": "try", "read_only": true, "default_branch_only": true,
			},
			want: wantRepo("fork-1"),
		},
		{
			name:   "delete",
			result: map[string]any{"id": "r-1"},
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.DeleteRepo(ctx, "molecule-ws-1")
			},
			method:  http.MethodDelete,
			path:    base + "/molecule-ws-1",
			wantNil: true,
		},
		{
			name:     "delete 204",
			noResult: true,
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.DeleteRepo(ctx, "molecule-ws-1")
			},
			method:  http.MethodDelete,
			path:    base + "/molecule-ws-1",
			wantNil: true,
		},
		{
			name:   "create token",
			result: tokenResult,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.CreateToken(ctx, "repo", CreateTokenRequest{Scope: ScopeWrite, TTLSeconds: 600})
			},
			method: http.MethodPost,
			path:   base + "/repo/tokens",
			body:   map[string]any{"scope": "write", "ttl": float64(600)},
			want:   wantToken,
		},
		{
			name:   "create token default ttl",
			result: tokenResult,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.CreateToken(ctx, "repo", CreateTokenRequest{Scope: ScopeRead})
			},
			method: http.MethodPost,
			path:   base + "/repo/tokens",
			body:   map[string]any{"scope": "read", "ttl": float64(DefaultTokenTTLSeconds)},
			want:   wantToken,
		},
		{
			name:   "create token max ttl",
			result: tokenResult,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.CreateToken(ctx, "repo", CreateTokenRequest{Scope: ScopeRead, TTLSeconds: MaxTokenTTLSeconds})
			},
			method: http.MethodPost,
			path:   base + "/repo/tokens",
			body:   map[string]any{"scope": "read", "ttl": float64(604800)},
			want:   wantToken,
		},
		{
			name:   "revoke token",
			result: nil,
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.RevokeToken(ctx, "repo", "tok-1")
			},
			method:  http.MethodDelete,
			path:    base + "/repo/tokens/tok-1",
			wantNil: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			respond := respondWith(http.StatusOK, true, nil, tc.result)
			if tc.noResult {
				respond = respondRaw(http.StatusNoContent, "", "")
			}
			c, f := newFake(t, respond)
			got, err := tc.call(context.Background(), c)
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			calls := f.Calls()
			if len(calls) != 1 {
				t.Fatalf("fake saw %d calls, want 1", len(calls))
			}
			cl := calls[0]
			if cl.Method != tc.method || cl.EscapedPath != tc.path {
				t.Errorf("request = %s %s, want %s %s", cl.Method, cl.EscapedPath, tc.method, tc.path)
			}
			if cl.Auth != "Bearer "+testToken {
				t.Errorf("Authorization = %q", cl.Auth)
			}
			if !reflect.DeepEqual(cl.Body, tc.body) {
				t.Errorf("request body = %#v, want %#v", cl.Body, tc.body)
			}
			if tc.body != nil && cl.ContentType != "application/json" {
				t.Errorf("Content-Type = %q", cl.ContentType)
			}
			if tc.wantNil {
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("result = %#v\nwant     %#v", got, tc.want)
			}
		})
	}
}

// TestPathSegmentsEscaped proves names cannot add path segments.
func TestPathSegmentsEscaped(t *testing.T) {
	c, f := newFake(t, respondWith(http.StatusOK, true, nil, repoResult("x")))
	c.namespace = "team/a b"
	if _, err := c.GetRepo(context.Background(), "x/../../admin?y=1#z"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateToken(context.Background(), "%2e%2e", CreateTokenRequest{Scope: ScopeRead}); err != nil {
		t.Fatal(err)
	}
	calls := f.Calls()
	want := []string{
		"/namespaces/team%2Fa%20b/repos/x%2F..%2F..%2Fadmin%3Fy=1%23z",
		"/namespaces/team%2Fa%20b/repos/%252e%252e/tokens",
	}
	for i, w := range want {
		if calls[i].EscapedPath != w {
			t.Errorf("call %d path = %q, want %q", i, calls[i].EscapedPath, w)
		}
	}
}

// TestBaseURLVariants checks the default base and that a trailing slash does
// not double up.
func TestBaseURLVariants(t *testing.T) {
	if got := New("", "ns", "t", nil).baseURL; got != DefaultBaseURL {
		t.Errorf("empty base = %q, want %q", got, DefaultBaseURL)
	}
	c, f := newFake(t, respondWith(http.StatusOK, true, nil, repoResult("r")))
	c.baseURL += "/api/"
	c2 := New(c.baseURL, testNamespace, testToken, c.http)
	if _, err := c2.GetRepo(context.Background(), "r"); err != nil {
		t.Fatal(err)
	}
	if got := f.Calls()[0].EscapedPath; got != "/api/namespaces/"+testNamespace+"/repos/r" {
		t.Errorf("path = %q", got)
	}
}

func TestNewNilHTTPClient(t *testing.T) {
	c := New("https://example.invalid", "ns", "t", nil)
	if c.http == nil || c.http.Timeout != DefaultTimeout {
		t.Fatalf("nil http client not replaced with a timed one: %+v", c.http)
	}
	if c.http.CheckRedirect == nil {
		t.Error("default client follows redirects")
	}
	if c.Namespace() != "ns" {
		t.Errorf("Namespace() = %q", c.Namespace())
	}
}

// TestSecretsNotPrinted: the API token and git tokens never reach fmt or
// slog output.
func TestSecretsNotPrinted(t *testing.T) {
	c := New("https://example.invalid", "ns", testToken, nil)
	tok := *wantToken
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("issued", "token", tok, "client", c)
	outputs := []string{
		fmt.Sprint(c), fmt.Sprintf("%v %+v", c, c),
		fmt.Sprint(tok), fmt.Sprintf("%v %+v", tok, &tok),
		buf.String(),
	}
	for _, out := range outputs {
		if strings.Contains(out, testToken) || strings.Contains(out, tok.Token) {
			t.Errorf("secret leaked into %q", out)
		}
	}
	if !strings.Contains(buf.String(), `"id":"tok-1"`) {
		t.Errorf("log lost the token id: %s", buf.String())
	}
	// JSON is how the handler hands the credential to the agent: it must
	// still carry the token.
	j, _ := json.Marshal(tok)
	if !strings.Contains(string(j), `"token":"git-secret-123"`) {
		t.Errorf("json = %s", j)
	}
}

// TestConcurrentUse runs many calls at once under -race.
func TestConcurrentUse(t *testing.T) {
	c, f := newFake(t, respondWith(http.StatusOK, true, nil, repoResult("r")))
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.GetRepo(context.Background(), "r"); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(f.Calls()); n != 32 {
		t.Errorf("fake saw %d calls, want 32", n)
	}
}
