package githubapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// accessTokenResponse is the part of GitHub's "Create an installation access
// token for an app" answer (201) that we use.
type accessTokenResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// githubErrorResponse is GitHub's documented error shape. Only Message is
// read, and only for the server log: it helps an operator tell "bad JWT"
// from "integration not found". It is redacted anyway (redactTokens), since
// whatever sits between us and GitHub could echo anything.
type githubErrorResponse struct {
	Message string `json:"message"`
}

// exchange performs POST /app/installations/{id}/access_tokens with a fresh
// app JWT and returns the installation token.
func (p *Provider) exchange(ctx context.Context) (string, time.Time, error) {
	jwt, err := signAppJWT(p.key, p.appID, p.now())
	if err != nil {
		return "", time.Time{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.tokenURL, http.NoBody)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("githubapp: building request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+jwt)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	// GitHub rejects API requests without a User-Agent.
	req.Header.Set("User-Agent", "molecule-platform")

	resp, err := p.client.Do(req)
	if err != nil {
		// *url.Error carries the method, our URL (no secrets in it) and the
		// transport reason; it never includes request headers.
		return "", time.Time{}, fmt.Errorf("githubapp: calling GitHub: %w", err)
	}
	defer resp.Body.Close()

	body, tooLarge, readErr := readBounded(resp.Body, maxResponseBytes)
	requestID := resp.Header.Get("X-GitHub-Request-Id")

	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		p.logUpstreamError(resp.StatusCode, requestID, body)
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return "", time.Time{}, fmt.Errorf("%w (HTTP %d)", ErrUnauthorized, resp.StatusCode)
		case http.StatusNotFound:
			return "", time.Time{}, fmt.Errorf("%w (HTTP %d)", ErrInstallationNotFound, resp.StatusCode)
		default:
			return "", time.Time{}, fmt.Errorf("%w (HTTP %d)", ErrUpstream, resp.StatusCode)
		}
	}
	if readErr != nil {
		return "", time.Time{}, fmt.Errorf("githubapp: reading GitHub response: %w", readErr)
	}
	if tooLarge {
		return "", time.Time{}, fmt.Errorf("%w: body larger than %d bytes", ErrBadResponse, maxResponseBytes)
	}
	var out accessTokenResponse
	if err := json.Unmarshal(body, &out); err != nil {
		// The json error is not wrapped: a type error could echo part of
		// the body, and the body holds the token.
		p.log.Warn("github token response is not valid JSON", "github_request_id", requestID)
		return "", time.Time{}, fmt.Errorf("%w: malformed JSON", ErrBadResponse)
	}
	if out.Token == "" {
		return "", time.Time{}, fmt.Errorf("%w: no token", ErrBadResponse)
	}
	if out.ExpiresAt.IsZero() {
		return "", time.Time{}, fmt.Errorf("%w: no expires_at", ErrBadResponse)
	}
	return out.Token, out.ExpiresAt, nil
}

// readBounded reads at most limit bytes and reports whether the body was
// longer, so a huge or endless answer cannot exhaust memory.
func readBounded(r io.Reader, limit int64) ([]byte, bool, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, false, err
	}
	if int64(len(b)) > limit {
		return b[:limit], true, nil
	}
	return b, false, nil
}

func (p *Provider) logUpstreamError(status int, requestID string, body []byte) {
	var ge githubErrorResponse
	msg := ""
	if json.Unmarshal(body, &ge) == nil {
		msg = truncate(redactTokens(ge.Message), 200)
	}
	p.log.Warn("GitHub refused the installation token request",
		"status", status, "github_message", msg, "github_request_id", requestID)
}

// GitHub's token prefixes (installation, personal, OAuth, user-to-server,
// refresh, fine-grained) and the start of any base64url JSON object, which
// is how a JWT begins.
var tokenPrefixes = [...]string{"ghs_", "ghp_", "gho_", "ghu_", "ghr_", "github_pat_", "eyJ"}

// redactTokens replaces every whitespace-separated word that contains a
// token-shaped prefix with "[redacted]".
func redactTokens(s string) string {
	words := strings.Fields(s)
	for i, w := range words {
		for _, pfx := range tokenPrefixes {
			if strings.Contains(w, pfx) {
				words[i] = "[redacted]"
				break
			}
		}
	}
	return strings.Join(words, " ")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// parseHTTPURL accepts only absolute http or https URLs with a host.
func parseHTTPURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("not a valid URL")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("must be an absolute http or https URL")
	}
	if u.User != nil {
		return "", errors.New("must not contain credentials")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New("must not have a query or fragment")
	}
	return u.String(), nil
}
