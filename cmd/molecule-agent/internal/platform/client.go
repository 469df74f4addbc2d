// Package platform is the agent's side of the registry (CONTRACT §5):
// register, heartbeat, and fetching the GitHub installation token (§12).
package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Sentinel errors. Status codes the loop reacts to are typed as StatusError.
var (
	ErrNoToken     = errors.New("workspace token unavailable")
	ErrUnreachable = errors.New("platform unreachable")
	ErrBadResponse = errors.New("platform returned an unusable response")
)

// StatusError is a non-2xx answer from the platform.
type StatusError struct{ Status int }

func (e *StatusError) Error() string { return fmt.Sprintf("platform answered HTTP %d", e.Status) }

// IsStatus reports whether err is a StatusError with the given code.
func IsStatus(err error, code int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == code
}

// TokenFunc returns the current workspace token. It is called per request so
// a rotated token file is picked up without restarting.
type TokenFunc func() (string, error)

// Client talks to the platform as one workspace. Safe for concurrent use.
type Client struct {
	BaseURL     string // e.g. http://platform:8080, no trailing slash
	WorkspaceID string
	Token       TokenFunc
	HTTP        *http.Client
}

// RegisterRequest is POST /registry/register's body.
type RegisterRequest struct {
	ID        string `json:"id"`
	URL       string `json:"url"`
	AgentCard any    `json:"agent_card"`
}

// Heartbeat is POST /registry/heartbeat's body.
type Heartbeat struct {
	WorkspaceID   string  `json:"workspace_id"`
	ErrorRate     float64 `json:"error_rate"`
	SampleError   string  `json:"sample_error"`
	ActiveTasks   int     `json:"active_tasks"`
	CurrentTask   string  `json:"current_task"`
	UptimeSeconds int64   `json:"uptime_seconds"`
	MonthlySpend  int64   `json:"monthly_spend"`
}

// Register announces the agent's URL and card.
func (c *Client) Register(ctx context.Context, agentURL string, card any) error {
	return c.do(ctx, http.MethodPost, "/registry/register",
		RegisterRequest{ID: c.WorkspaceID, URL: agentURL, AgentCard: card}, nil)
}

// SendHeartbeat posts one beat.
func (c *Client) SendHeartbeat(ctx context.Context, hb Heartbeat) error {
	hb.WorkspaceID = c.WorkspaceID
	return c.do(ctx, http.MethodPost, "/registry/heartbeat", hb, nil)
}

// InstallationToken is GET /workspaces/:id/github-installation-token's answer.
type InstallationToken struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// GitHubToken asks the platform for a GitHub App installation token.
func (c *Client) GitHubToken(ctx context.Context) (InstallationToken, error) {
	var out InstallationToken
	err := c.do(ctx, http.MethodGet, "/workspaces/"+url.PathEscape(c.WorkspaceID)+"/github-installation-token", nil, &out)
	if err != nil {
		return InstallationToken{}, err
	}
	if out.Token == "" {
		return InstallationToken{}, fmt.Errorf("%w: empty token", ErrBadResponse)
	}
	return out, nil
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	tok, err := c.Token()
	if err != nil || tok == "" {
		return ErrNoToken
	}
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode %s: %w", path, err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return fmt.Errorf("%w: bad platform url", ErrUnreachable)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return ErrUnreachable
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return &StatusError{Status: resp.StatusCode}
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out); err != nil {
		return fmt.Errorf("%w: invalid JSON", ErrBadResponse)
	}
	return nil
}
