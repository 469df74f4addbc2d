// Package provisioner starts and stops workspaces' agents (§12). A backend
// (Docker, the SaaS control plane, or none) implements Provisioner; the
// Lifecycle is what the API calls, by workspace id.
package provisioner

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
)

// ErrNoBackend means no backend can run a non-external workspace
// (MOLECULE_PROVISIONER=none, or none detected). The API answers 503.
var ErrNoBackend = errors.New("no provisioner is configured: only external workspaces can run on this server (set MOLECULE_PROVISIONER)")

// ErrNotFound means the backend has no such instance.
var ErrNotFound = errors.New("instance not found")

// Lifecycle runs workspaces' agents on the selected backend. Every method
// is safe for concurrent use and idempotent.
type Lifecycle interface {
	// Backend names the backend: "docker", "controlplane" or "none".
	Backend() string
	// Provision (re)starts the workspace's agent asynchronously and returns
	// once the work is queued; the workspace then goes online when its agent
	// registers, or failed. ErrNoBackend when nothing can run it.
	Provision(ctx context.Context, wsID uuid.UUID) error
	// Stop stops the agent and keeps its volumes (pause).
	Stop(ctx context.Context, wsID uuid.UUID) error
	// Remove stops the agent and deletes its volumes (delete).
	Remove(ctx context.Context, wsID uuid.UUID) error
	// IsRunning: no instance → (false, nil); any transient backend error →
	// (true, err), so that a flaky daemon never triggers a restart.
	IsRunning(ctx context.Context, wsID uuid.UUID) (bool, error)
	// ConfigFiles reaches the workspace's config volume (/configs).
	ConfigFiles
}

// FileInfo is an entry of a workspace's /configs.
type FileInfo struct {
	Path    string    `json:"path"`
	Size    int64     `json:"size"`
	Dir     bool      `json:"dir"`
	ModTime time.Time `json:"mod_time"`
}

// ConfigFiles reads and writes a workspace's config volume. Paths are
// relative to /configs, already cleaned and confined by the caller (no
// "..", not absolute, no NUL). Missing paths are ErrNotFound; backend
// failures are returned as they are and must never reach a client.
type ConfigFiles interface {
	ListFiles(ctx context.Context, wsID uuid.UUID, dir string, depth int) ([]FileInfo, error)
	ReadFile(ctx context.Context, wsID uuid.UUID, path string) ([]byte, error)
	// WriteFiles writes every file (creating directories) or none.
	WriteFiles(ctx context.Context, wsID uuid.UUID, files map[string][]byte) error
	DeletePath(ctx context.Context, wsID uuid.UUID, path string) error
}

// Unavailable is the Lifecycle of a server without a backend.
type Unavailable struct{}

var _ Lifecycle = Unavailable{}

// Backend implements Lifecycle.
func (Unavailable) Backend() string { return "none" }

// Provision implements Lifecycle: nothing can run here.
func (Unavailable) Provision(context.Context, uuid.UUID) error { return ErrNoBackend }

// Stop implements Lifecycle: nothing runs, so nothing to stop.
func (Unavailable) Stop(context.Context, uuid.UUID) error { return nil }

// Remove implements Lifecycle: nothing runs, so nothing to remove.
func (Unavailable) Remove(context.Context, uuid.UUID) error { return nil }

// IsRunning implements Lifecycle. Without a backend the state is unknown,
// which must never read as "dead" (that would trigger restarts).
func (Unavailable) IsRunning(context.Context, uuid.UUID) (bool, error) { return true, ErrNoBackend }

// ListFiles implements ConfigFiles: there is no volume.
func (Unavailable) ListFiles(context.Context, uuid.UUID, string, int) ([]FileInfo, error) {
	return nil, ErrNoBackend
}

// ReadFile implements ConfigFiles: there is no volume.
func (Unavailable) ReadFile(context.Context, uuid.UUID, string) ([]byte, error) {
	return nil, ErrNoBackend
}

// WriteFiles implements ConfigFiles: there is no volume.
func (Unavailable) WriteFiles(context.Context, uuid.UUID, map[string][]byte) error {
	return ErrNoBackend
}

// DeletePath implements ConfigFiles: there is no volume.
func (Unavailable) DeletePath(context.Context, uuid.UUID, string) error { return ErrNoBackend }
