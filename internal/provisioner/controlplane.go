package provisioner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
)

// ControlPlane provisions workspaces through the SaaS control plane (§12):
//
//	POST   /cp/workspaces/provision            {org_id, workspace_id, runtime, tier, platform_url, env, files} → 201 {instance_id, state}
//	DELETE /cp/workspaces/:id?instance_id=      (404 counts as gone)
//	GET    /cp/workspaces/:id/status?instance_id= → {state}, "running" = up
//
// with `Authorization: Bearer MOLECULE_CP_SHARED_SECRET`. `files` (relative
// path → content) carries the config volume, .auth_token included, for the
// control plane to place at /configs before the agent starts. The control
// plane has no stop or files API: Stop deletes the instance (a resume
// provisions a new one) and ConfigFiles answer ErrUnsupported.
type ControlPlane struct {
	base, secret, orgID string
	http                *http.Client
}

var _ Provisioner = (*ControlPlane)(nil)

// ControlPlaneOptions configure NewControlPlane.
type ControlPlaneOptions struct {
	BaseURL, SharedSecret, OrgID string
	HTTPClient                   *http.Client // default: 30 s timeout
}

// NewControlPlane validates the options.
func NewControlPlane(o ControlPlaneOptions) (*ControlPlane, error) {
	u, err := url.Parse(o.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("CP_PROVISION_URL: must be an http(s) URL")
	}
	if o.OrgID == "" {
		return nil, errors.New("MOLECULE_ORG_ID: is required by the control-plane provisioner")
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &ControlPlane{base: strings.TrimRight(o.BaseURL, "/"), secret: o.SharedSecret, orgID: o.OrgID, http: hc}, nil
}

// Name implements Provisioner.
func (c *ControlPlane) Name() string { return "controlplane" }

// CPError is a non-2xx answer of the control plane (status only: its body
// is never surfaced).
type CPError struct {
	Op     string
	Status int
}

func (e *CPError) Error() string { return fmt.Sprintf("control plane %s: HTTP %d", e.Op, e.Status) }

func (c *ControlPlane) do(ctx context.Context, op, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.secret != "" {
		req.Header.Set("Authorization", "Bearer "+c.secret)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("control plane %s: %w", op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return resp.StatusCode, &CPError{Op: op, Status: resp.StatusCode}
	}
	if out != nil {
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("control plane %s: undecodable answer: %w", op, err)
		}
	}
	return resp.StatusCode, nil
}

// Start implements Provisioner.
func (c *ControlPlane) Start(ctx context.Context, spec Spec) (Instance, error) {
	env := make(map[string]string, len(spec.Env))
	for _, kv := range spec.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	files := make(map[string]string, len(spec.Files))
	for k, v := range spec.Files {
		files[k] = string(v)
	}
	runtime := spec.Runtime
	if runtime == "" {
		runtime = "molecule-agent"
	}
	body := map[string]any{
		"org_id": c.orgID, "workspace_id": spec.WorkspaceID.String(), "runtime": runtime,
		"tier": spec.Tier, "platform_url": spec.PlatformURL, "env": env, "files": files,
	}
	var out struct {
		InstanceID string `json:"instance_id"`
		State      string `json:"state"`
	}
	if _, err := c.do(ctx, "provision", http.MethodPost, "/cp/workspaces/provision", body, &out); err != nil {
		return Instance{}, err
	}
	if out.InstanceID == "" {
		return Instance{}, errors.New("control plane provision: answer without instance_id")
	}
	return Instance{ID: out.InstanceID}, nil
}

func (c *ControlPlane) path(wsID uuid.UUID, suffix, instanceID string) string {
	return "/cp/workspaces/" + wsID.String() + suffix + "?instance_id=" + url.QueryEscape(instanceID)
}

// Stop implements Provisioner (the control plane deletes the instance).
func (c *ControlPlane) Stop(ctx context.Context, wsID uuid.UUID, instanceID string) error {
	return c.Remove(ctx, wsID, instanceID)
}

// Remove implements Provisioner; an instance the control plane does not
// know is already gone.
func (c *ControlPlane) Remove(ctx context.Context, wsID uuid.UUID, instanceID string) error {
	if instanceID == "" {
		return nil
	}
	status, err := c.do(ctx, "delete", http.MethodDelete, c.path(wsID, "", instanceID), nil, nil)
	if status == http.StatusNotFound || status == http.StatusGone {
		return nil
	}
	return err
}

// IsRunning implements Provisioner: 404 → (false, nil); a transport error
// or any other status → (true, err).
func (c *ControlPlane) IsRunning(ctx context.Context, wsID uuid.UUID, instanceID string) (bool, error) {
	if instanceID == "" {
		return false, nil
	}
	var out struct {
		State string `json:"state"`
	}
	status, err := c.do(ctx, "status", http.MethodGet, c.path(wsID, "/status", instanceID), nil, &out)
	if status == http.StatusNotFound {
		return false, nil
	}
	if err != nil {
		return true, err
	}
	switch out.State {
	case "running", "starting", "provisioning", "pending":
		return true, nil
	case "":
		return true, errors.New("control plane status: answer without state")
	default:
		return false, nil
	}
}

// ListFiles implements ConfigFiles: unsupported.
func (c *ControlPlane) ListFiles(context.Context, uuid.UUID, string, int) ([]FileInfo, error) {
	return nil, ErrUnsupported
}

// ReadFile implements ConfigFiles: unsupported.
func (c *ControlPlane) ReadFile(context.Context, uuid.UUID, string) ([]byte, error) {
	return nil, ErrUnsupported
}

// WriteFiles implements ConfigFiles: unsupported.
func (c *ControlPlane) WriteFiles(context.Context, uuid.UUID, map[string][]byte) error {
	return ErrUnsupported
}

// DeletePath implements ConfigFiles: unsupported.
func (c *ControlPlane) DeletePath(context.Context, uuid.UUID, string) error { return ErrUnsupported }
