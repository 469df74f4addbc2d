package artifacts

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// Repo is an Artifacts repository as Cloudflare describes it.
//
// RemoteURL is the git remote as returned; it may embed credentials, so
// pass it through StripCredentials before storing or logging it.
type Repo struct {
	ID            string    `json:"id,omitempty"`
	Name          string    `json:"name"`
	Namespace     string    `json:"namespace,omitempty"`
	Description   string    `json:"description,omitempty"`
	RemoteURL     string    `json:"remote_url"`
	DefaultBranch string    `json:"default_branch,omitempty"`
	ReadOnly      bool      `json:"read_only"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// CreateRepoRequest creates an empty repository.
type CreateRepoRequest struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	ReadOnly    bool   `json:"read_only"`
}

// ImportRepoRequest creates a repository from an existing https git remote.
// Branch empty means the remote's default branch; Depth 0 means full history.
type ImportRepoRequest struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	ReadOnly    bool   `json:"read_only"`
	URL         string `json:"url"`
	Branch      string `json:"branch,omitempty"`
	Depth       int    `json:"depth,omitempty"`
}

// ForkRepoRequest forks an existing repository into a new one named Name.
type ForkRepoRequest struct {
	Name              string `json:"name"`
	Description       string `json:"description,omitempty"`
	ReadOnly          bool   `json:"read_only"`
	DefaultBranchOnly bool   `json:"default_branch_only"`
}

// Token scopes.
const (
	ScopeRead  = "read"
	ScopeWrite = "write"
)

// Token lifetimes in seconds (CONTRACT.md §18).
const (
	DefaultTokenTTLSeconds = 3600
	MaxTokenTTLSeconds     = 7 * 24 * 3600
)

// CreateTokenRequest asks for a short-lived git credential. TTLSeconds 0
// means DefaultTokenTTLSeconds.
type CreateTokenRequest struct {
	Scope      string `json:"scope"`
	TTLSeconds int    `json:"ttl"`
}

// Token is a short-lived git credential. Token.Token is a secret: String and
// LogValue redact it so that it cannot leak through fmt or slog.
type Token struct {
	ID        string    `json:"id"`
	Token     string    `json:"token"`
	Scope     string    `json:"scope"`
	ExpiresAt time.Time `json:"expires_at"`
	RemoteURL string    `json:"remote_url"`
}

// String omits the secret and the remote URL (which may embed it).
func (t Token) String() string {
	return fmt.Sprintf("artifacts.Token{id=%s scope=%s expires_at=%s}",
		t.ID, t.Scope, t.ExpiresAt.UTC().Format(time.RFC3339))
}

// LogValue omits the secret and the remote URL (which may embed it).
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", t.ID),
		slog.String("scope", t.Scope),
		slog.Time("expires_at", t.ExpiresAt),
	)
}

// ValidScope reports whether s is a token scope Artifacts accepts.
func ValidScope(s string) bool { return s == ScopeRead || s == ScopeWrite }

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidArgument}, a...)...)
}

// CreateRepo creates an empty repository (POST .../repos).
func (c *Client) CreateRepo(ctx context.Context, req CreateRepoRequest) (*Repo, error) {
	if !ValidRepoName(req.Name) {
		return nil, invalid("repo name %q", req.Name)
	}
	return c.repoCall(ctx, http.MethodPost, req)
}

// repoCall sends one request under .../repos/{segs...} whose result is a Repo.
func (c *Client) repoCall(ctx context.Context, method string, body any, segs ...string) (*Repo, error) {
	u, err := c.repoPath(segs...)
	if err != nil {
		return nil, err
	}
	var r Repo
	if err := c.do(ctx, method, u, body, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// ImportRepo creates a repository from an https remote (POST .../repos/import).
// The URL is checked with ValidateImportURL before anything is sent.
func (c *Client) ImportRepo(ctx context.Context, req ImportRepoRequest) (*Repo, error) {
	if !ValidRepoName(req.Name) {
		return nil, invalid("repo name %q", req.Name)
	}
	if err := ValidateImportURL(req.URL); err != nil {
		return nil, err
	}
	if req.Depth < 0 {
		return nil, invalid("import depth %d", req.Depth)
	}
	return c.repoCall(ctx, http.MethodPost, req, "import")
}

// GetRepo fetches a repository's live metadata (GET .../repos/{name}).
func (c *Client) GetRepo(ctx context.Context, name string) (*Repo, error) {
	return c.repoCall(ctx, http.MethodGet, nil, name)
}

// ForkRepo forks source into req.Name (POST .../repos/{source}/fork).
func (c *Client) ForkRepo(ctx context.Context, source string, req ForkRepoRequest) (*Repo, error) {
	if !ValidRepoName(req.Name) {
		return nil, invalid("fork name %q", req.Name)
	}
	return c.repoCall(ctx, http.MethodPost, req, source, "fork")
}

// DeleteRepo deletes a repository (DELETE .../repos/{name}). A 404 comes
// back as a Cloudflare client error; callers cleaning up may treat it as
// success.
func (c *Client) DeleteRepo(ctx context.Context, name string) error {
	u, err := c.repoPath(name)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, u, nil, nil)
}

// CreateToken issues a short-lived git credential for repo
// (POST .../repos/{name}/tokens).
func (c *Client) CreateToken(ctx context.Context, repo string, req CreateTokenRequest) (*Token, error) {
	if !ValidScope(req.Scope) {
		return nil, invalid("token scope %q", req.Scope)
	}
	if req.TTLSeconds == 0 {
		req.TTLSeconds = DefaultTokenTTLSeconds
	}
	if req.TTLSeconds < 0 || req.TTLSeconds > MaxTokenTTLSeconds {
		return nil, invalid("token ttl %d", req.TTLSeconds)
	}
	u, err := c.repoPath(repo, "tokens")
	if err != nil {
		return nil, err
	}
	var t Token
	if err := c.do(ctx, http.MethodPost, u, req, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// RevokeToken revokes a token before it expires
// (DELETE .../repos/{name}/tokens/{id}).
func (c *Client) RevokeToken(ctx context.Context, repo, tokenID string) error {
	u, err := c.repoPath(repo, "tokens", tokenID)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, u, nil, nil)
}
