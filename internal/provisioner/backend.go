package provisioner

import (
	"context"
	"errors"

	"github.com/google/uuid"
)

// ErrUnsupported means the backend cannot do this operation (for example
// the control plane exposes no config files).
var ErrUnsupported = errors.New("operation not supported by this provisioner")

// Provisioner is a backend that runs one agent instance per workspace.
// The Manager drives it; API code never calls a backend directly.
//
// Contract:
//   - Idempotency: Start replaces whatever instance the workspace had (a
//     second Start is a restart, never a duplicate); Stop and Remove of an
//     instance that does not exist succeed.
//   - Concurrency: every method is safe for concurrent use. The Manager
//     serialises Start per workspace on one replica; across replicas two
//     Starts of the same workspace may race and the backend must end with
//     exactly one instance (the last one wins).
//   - Errors: ErrNotFound when the instance or file does not exist;
//     ErrUnsupported for operations the backend lacks; anything else is a
//     backend failure whose text is for logs only (it may name hosts,
//     daemon internals or upstream bodies).
//   - IsRunning: no instance → (false, nil); any other failure (timeout,
//     EOF, refused, 5xx) → (true, err), so a flaky backend is never read as
//     a dead agent.
type Provisioner interface {
	// Name is "docker" or "controlplane".
	Name() string
	// Start writes spec.Files into the workspace's config volume, then
	// starts the agent with spec.Env. It returns the instance id and the
	// URL at which the platform reaches the agent.
	Start(ctx context.Context, spec Spec) (Instance, error)
	// Stop stops the agent and keeps its volumes.
	Stop(ctx context.Context, wsID uuid.UUID, instanceID string) error
	// Remove stops the agent and deletes its volumes.
	Remove(ctx context.Context, wsID uuid.UUID, instanceID string) error
	IsRunning(ctx context.Context, wsID uuid.UUID, instanceID string) (bool, error)
	ConfigFiles
}

// Spec is everything a backend needs to start one workspace's agent.
type Spec struct {
	WorkspaceID uuid.UUID
	Name        string
	Runtime     string
	Tier        int
	// WorkspaceDir is a host directory to mount at /workspace ("" = a
	// named volume); ReadOnly mounts it read-only.
	WorkspaceDir string
	ReadOnly     bool
	// Env is the agent's environment in order (KEY=value), §12.
	Env []string
	// Files are written into /configs before the agent starts (relative
	// paths; .auth_token gets mode 0600).
	Files map[string][]byte
	// PlatformURL is the URL the agent calls back (also in Env).
	PlatformURL string
	// InstanceID is the previous instance, if any.
	InstanceID string
}

// Instance is a started agent.
type Instance struct {
	ID  string
	URL string
}
