package artifacts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const (
	// DefaultBaseURL is the Artifacts root of the public Cloudflare v4 API,
	// used when New is given an empty base URL. It is also the default of
	// CF_ARTIFACTS_API_URL (internal/config refers to this constant, so the
	// two cannot drift apart). Deployments normally set CF_ARTIFACTS_API_URL
	// to the account-scoped Artifacts root; see the package doc.
	DefaultBaseURL = "https://api.cloudflare.com/client/v4/artifacts"

	// DefaultTimeout bounds a whole request (connect, upload, response) for
	// the http.Client that New builds when none is given.
	DefaultTimeout = 30 * time.Second

	// MaxResponseBytes caps how much of any response body is read.
	MaxResponseBytes = 1 << 20
)

// Service is the set of Artifacts operations the HTTP handlers depend on.
// *Client implements it; handler tests may substitute a fake.
//
// Every method is safe for concurrent use, takes a context that cancels the
// request, and returns either a result or an error classified by
// IsClientError / IsUpstreamFailure (arguments refused before sending wrap
// ErrInvalidArgument). Create, fork and import are not idempotent: a retry
// after an ambiguous failure may meet a 409 from Cloudflare.
type Service interface {
	CreateRepo(ctx context.Context, req CreateRepoRequest) (*Repo, error)
	ImportRepo(ctx context.Context, req ImportRepoRequest) (*Repo, error)
	GetRepo(ctx context.Context, name string) (*Repo, error)
	ForkRepo(ctx context.Context, source string, req ForkRepoRequest) (*Repo, error)
	DeleteRepo(ctx context.Context, name string) error
	CreateToken(ctx context.Context, repo string, req CreateTokenRequest) (*Token, error)
	RevokeToken(ctx context.Context, repo, tokenID string) error
	Namespace() string
}

var _ Service = (*Client)(nil)

// Client talks to the Artifacts REST API for one namespace. It holds no
// mutable state and is safe for concurrent use.
type Client struct {
	baseURL   string
	namespace string
	token     string
	http      *http.Client
}

// New returns a client for namespace under baseURL (DefaultBaseURL when
// empty) authenticating with apiToken. A nil httpClient is replaced by one
// with DefaultTimeout that does not follow redirects: the API has no reason
// to redirect, and a redirect must not carry our request elsewhere.
func New(baseURL, namespace, apiToken string, httpClient *http.Client) *Client {
	if baseURL == "" {
		baseURL = DefaultBaseURL
	}
	if httpClient == nil {
		httpClient = &http.Client{
			Timeout: DefaultTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	return &Client{
		baseURL:   strings.TrimRight(baseURL, "/"),
		namespace: namespace,
		token:     apiToken,
		http:      httpClient,
	}
}

// Namespace is the Artifacts namespace the client works in; handlers store
// it beside the repo name.
func (c *Client) Namespace() string { return c.namespace }

// String keeps the API token out of %v and log output.
func (c *Client) String() string {
	return fmt.Sprintf("artifacts.Client{base=%s namespace=%s}", c.baseURL, c.namespace)
}

// envelope is the Cloudflare v4 response wrapper. Success is a pointer so
// that a JSON object without "success" is recognised as not an envelope.
type envelope struct {
	Success  *bool           `json:"success"`
	Errors   []ErrorDetail   `json:"errors"`
	Messages json.RawMessage `json:"messages"`
	Result   json.RawMessage `json:"result"`
}

// decodeEnvelope returns nil when raw is not a JSON object carrying a
// boolean "success": such a body did not come from the Cloudflare API.
func decodeEnvelope(raw []byte) *envelope {
	var e envelope
	if err := json.Unmarshal(raw, &e); err != nil || e.Success == nil {
		return nil
	}
	return &e
}

func (e *envelope) ok() bool { return e.Success != nil && *e.Success }

// repoPath builds {base}/namespaces/{ns}/repos[/{seg}...], escaping each
// segment. It refuses empty, "." and ".." segments, which would change the
// meaning of the path.
func (c *Client) repoPath(segs ...string) (string, error) {
	var b strings.Builder
	b.WriteString(c.baseURL)
	for _, s := range append([]string{"namespaces", c.namespace, "repos"}, segs...) {
		if s == "" || s == "." || s == ".." {
			return "", fmt.Errorf("%w: empty or dot path segment %q", ErrInvalidArgument, s)
		}
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String(), nil
}

// do sends one request and decodes the envelope. When out is non-nil a
// successful response must carry a non-null result that decodes into it.
func (c *Client) do(ctx context.Context, method, u string, in, out any) error {
	var body io.Reader
	if in != nil {
		buf, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("artifacts: encode request: %w", err)
		}
		body = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("artifacts: build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "molecule-artifacts/1")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := c.http.Do(req)
	if err != nil {
		// *url.Error names the method and URL, neither of which is secret;
		// the token travels in a header and is not part of it.
		return fmt.Errorf("artifacts: %s request failed: %w", method, err)
	}
	defer resp.Body.Close()

	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("artifacts: read response (status %d): %w", resp.StatusCode, err)
	}
	if len(raw) > MaxResponseBytes {
		return fmt.Errorf("%w (status %d)", ErrResponseTooLarge, resp.StatusCode)
	}

	// 204 has no body by definition; accept it for calls that expect no
	// result (the deletes) rather than calling it a malformed envelope.
	if resp.StatusCode == http.StatusNoContent && len(raw) == 0 && out == nil {
		return nil
	}
	env := decodeEnvelope(raw)
	if resp.StatusCode < 200 || resp.StatusCode > 299 || env == nil || !env.ok() {
		return newStatusError(resp.StatusCode, env, raw)
	}
	if out == nil {
		return nil
	}
	if len(env.Result) == 0 || bytes.Equal(env.Result, []byte("null")) {
		return &APIError{StatusCode: resp.StatusCode, Message: upstreamMessage, Detail: "success without result"}
	}
	if err := json.Unmarshal(env.Result, out); err != nil {
		return &APIError{StatusCode: resp.StatusCode, Message: upstreamMessage, Detail: "undecodable result: " + err.Error()}
	}
	return nil
}
