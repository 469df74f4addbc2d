// Package githubapp is the platform's built-in GitHub App credential
// provider. It mints an app JWT (RS256), exchanges it for an installation
// access token, caches that token until 5 minutes before it expires, and
// serves it through provisionhook.TokenProvider to the platform's
// github-installation-token routes, which agents call from their git
// credential helper (CONTRACT §12.1, §20).
package githubapp

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moleculesai/molecule/pkg/provisionhook"
)

// DefaultAPIBaseURL is github.com's REST API. GitHub Enterprise Server uses
// https://<host>/api/v3.
const DefaultAPIBaseURL = "https://api.github.com"

const (
	// refreshBefore is how long before expiry a cached token is replaced.
	// Agents may hold a token for a long git operation, so they should never
	// be handed one that is about to lapse.
	refreshBefore = 5 * time.Minute
	// staleGrace: when a refresh fails, a cached token that is still valid
	// for at least this long is served instead of an error, so a GitHub blip
	// inside the refresh window does not break every agent's git at once.
	staleGrace = time.Minute
	// defaultRefreshTimeout bounds one exchange with GitHub. The exchange
	// runs detached from the caller's context (it is shared by all waiting
	// callers), so it needs its own limit.
	defaultRefreshTimeout = 30 * time.Second
	// maxResponseBytes bounds what we read from GitHub. A real answer is
	// well under 10 KiB (token, expiry, permissions, repositories).
	maxResponseBytes = 1 << 20
)

// CredentialHelperEnv is the variable MutateEnv sets so the agent image knows
// to configure `molecule-agent git-credential` as git's credential helper.
const CredentialHelperEnv = "MOLECULE_GIT_CREDENTIAL_HELPER"

// Errors from Token. Messages never include the token, the app JWT or the
// body GitHub answered with.
var (
	// ErrUnauthorized: GitHub rejected the app JWT (401) or refused the
	// installation (403) — wrong app id, wrong key, revoked app, clock skew.
	ErrUnauthorized = errors.New("githubapp: GitHub rejected the app credentials")
	// ErrInstallationNotFound: GitHub answered 404 for the installation.
	ErrInstallationNotFound = errors.New("githubapp: installation not found")
	// ErrUpstream: any other unexpected status (5xx, 429, …).
	ErrUpstream = errors.New("githubapp: unexpected answer from GitHub")
	// ErrBadResponse: a success status with a body we cannot use (malformed
	// JSON, missing fields, too large).
	ErrBadResponse = errors.New("githubapp: unusable token response from GitHub")
)

// ConfigError reports an invalid setting. Field is the Config field for New
// and the environment variable for NewFromEnv.
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string { return "githubapp: " + e.Field + ": " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// Config configures a Provider.
type Config struct {
	AppID          int64
	InstallationID int64
	// PrivateKeyPEM is the app's private key (PKCS#1 or PKCS#8 RSA). When
	// empty, the key is read from PrivateKeyFile.
	PrivateKeyPEM  []byte
	PrivateKeyFile string
	// APIBaseURL defaults to DefaultAPIBaseURL.
	APIBaseURL string
	// HTTPClient defaults to a client with a 30s timeout.
	HTTPClient *http.Client
	// Logger defaults to a discarding logger.
	Logger *slog.Logger
	// Now is the clock used for JWT claims and cache expiry; time.Now if nil.
	Now func() time.Time
	// RefreshTimeout bounds one token exchange; 30s if zero.
	RefreshTimeout time.Duration
}

// Provider is a provisionhook.EnvMutator and provisionhook.TokenProvider for
// one GitHub App installation. It is safe for concurrent use.
type Provider struct {
	appID          int64
	installationID int64
	key            *rsa.PrivateKey
	tokenURL       string
	client         *http.Client
	log            *slog.Logger
	now            func() time.Time
	refreshTimeout time.Duration

	mu        sync.Mutex
	token     string
	expiresAt time.Time
	inflight  *flight
}

// flight is one exchange with GitHub shared by every caller that needed a
// token while it ran. done is closed once the result fields are set.
type flight struct {
	done      chan struct{}
	token     string
	expiresAt time.Time
	err       error
}

var (
	_ provisionhook.EnvMutator    = (*Provider)(nil)
	_ provisionhook.TokenProvider = (*Provider)(nil)
)

// New validates cfg and returns a Provider. It reads the key file but makes
// no network call: a bad app id or installation only shows on first use.
func New(cfg Config) (*Provider, error) {
	if cfg.AppID <= 0 {
		return nil, &ConfigError{Field: "AppID", Err: errors.New("must be a positive integer")}
	}
	if cfg.InstallationID <= 0 {
		return nil, &ConfigError{Field: "InstallationID", Err: errors.New("must be a positive integer")}
	}
	pemBytes := cfg.PrivateKeyPEM
	if len(pemBytes) == 0 {
		if cfg.PrivateKeyFile == "" {
			return nil, &ConfigError{Field: "PrivateKeyFile", Err: errors.New("is required")}
		}
		b, err := os.ReadFile(cfg.PrivateKeyFile)
		if err != nil {
			// The *PathError names the path and the OS reason; no content.
			return nil, &ConfigError{Field: "PrivateKeyFile", Err: fmt.Errorf("cannot read key file: %w", err)}
		}
		pemBytes = b
	}
	key, err := parsePrivateKey(pemBytes)
	if err != nil {
		field := "PrivateKeyFile"
		if len(cfg.PrivateKeyPEM) > 0 {
			field = "PrivateKeyPEM"
		}
		return nil, &ConfigError{Field: field, Err: err}
	}
	base, err := normalizeBaseURL(cfg.APIBaseURL)
	if err != nil {
		return nil, &ConfigError{Field: "APIBaseURL", Err: err}
	}
	p := &Provider{
		appID:          cfg.AppID,
		installationID: cfg.InstallationID,
		key:            key,
		tokenURL:       base + "/app/installations/" + strconv.FormatInt(cfg.InstallationID, 10) + "/access_tokens",
		client:         cfg.HTTPClient,
		log:            cfg.Logger,
		now:            cfg.Now,
		refreshTimeout: cfg.RefreshTimeout,
	}
	if p.client == nil {
		p.client = &http.Client{Timeout: defaultRefreshTimeout}
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.refreshTimeout <= 0 {
		p.refreshTimeout = defaultRefreshTimeout
	}
	p.log = p.log.With("component", "githubapp", "app_id", cfg.AppID, "installation_id", cfg.InstallationID)
	return p, nil
}

// Name implements provisionhook.EnvMutator.
func (p *Provider) Name() string { return "github-app" }

// MutateEnv implements provisionhook.EnvMutator. It deliberately injects no
// token: installation tokens live one hour, so a token in the env would go
// stale in any long-running workspace, and it would be readable by anyone
// who can `docker inspect` the container. Instead it tells the agent image
// to use the platform credential helper, which fetches a fresh token from
// GET /workspaces/:id/github-installation-token on each git operation. An
// existing value (an operator secret or an earlier mutator) wins, so a
// workspace can opt out by setting it to something else.
func (p *Provider) MutateEnv(ctx context.Context, _ provisionhook.WorkspaceInfo, env map[string]string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, ok := env[CredentialHelperEnv]; !ok {
		env[CredentialHelperEnv] = "platform"
	}
	return nil
}

// Token implements provisionhook.TokenProvider. It returns the cached
// installation token while it is valid for more than 5 minutes; otherwise
// it exchanges a fresh app JWT for a new one. Concurrent callers share a
// single exchange. A caller whose ctx ends stops waiting, but the exchange
// continues for the others (bounded by RefreshTimeout). If the exchange
// fails while the cached token is still valid for at least a minute, the
// cached token is returned and the failure is only logged.
func (p *Provider) Token(ctx context.Context) (string, time.Time, error) {
	if err := ctx.Err(); err != nil {
		return "", time.Time{}, err
	}
	p.mu.Lock()
	if p.token != "" && p.now().Before(p.expiresAt.Add(-refreshBefore)) {
		tok, exp := p.token, p.expiresAt
		p.mu.Unlock()
		return tok, exp, nil
	}
	f := p.inflight
	if f == nil {
		f = &flight{done: make(chan struct{})}
		p.inflight = f
		// Detached from ctx so that the first caller's cancellation does
		// not fail everyone else waiting on the same flight; values (trace
		// ids) are kept.
		go p.refresh(context.WithoutCancel(ctx), f)
	}
	p.mu.Unlock()

	select {
	case <-f.done:
		return f.token, f.expiresAt, f.err
	case <-ctx.Done():
		return "", time.Time{}, ctx.Err()
	}
}

func (p *Provider) refresh(ctx context.Context, f *flight) {
	ctx, cancel := context.WithTimeout(ctx, p.refreshTimeout)
	defer cancel()
	tok, exp, err := p.exchange(ctx)

	p.mu.Lock()
	defer p.mu.Unlock()
	defer close(f.done)
	p.inflight = nil
	if err == nil {
		p.token, p.expiresAt = tok, exp
		f.token, f.expiresAt = tok, exp
		p.log.Info("github installation token refreshed", "expires_at", exp)
		return
	}
	if p.token != "" && p.now().Add(staleGrace).Before(p.expiresAt) {
		p.log.Warn("github installation token refresh failed; serving cached token",
			"error", err, "expires_at", p.expiresAt)
		f.token, f.expiresAt = p.token, p.expiresAt
		return
	}
	p.log.Warn("github installation token refresh failed", "error", err)
	f.err = err
}

// normalizeBaseURL checks that base is an absolute http(s) URL and trims the
// trailing slash so paths can be appended.
func normalizeBaseURL(base string) (string, error) {
	base = strings.TrimSpace(base)
	if base == "" {
		return DefaultAPIBaseURL, nil
	}
	u, err := parseHTTPURL(base)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(u, "/"), nil
}
