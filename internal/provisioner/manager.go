package provisioner

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/auth"
	"github.com/moleculesai/molecule/internal/events"
	"github.com/moleculesai/molecule/internal/secrets"
	"github.com/moleculesai/molecule/internal/store"
	"github.com/moleculesai/molecule/pkg/provisionhook"
)

// Event names the Manager records (§10).
const (
	EventProvisioning    = "WORKSPACE_PROVISIONING"
	EventProvisionFailed = "WORKSPACE_PROVISION_FAILED"
	EventOffline         = "WORKSPACE_OFFLINE"
)

// ManagerOptions are the Manager's dependencies.
type ManagerOptions struct {
	Store   *store.Store
	Backend Provisioner // nil: no backend (Provision answers ErrNoBackend)
	Keyring *secrets.Keyring
	Hooks   *provisionhook.Registry // nil: no hooks
	Events  events.Publisher
	// Invalidate drops cached token lookups after a rotation (auth.Invalidate).
	Invalidate func()
	// PlatformURL is the URL agents call back, as seen from the agent.
	PlatformURL func() string
	// TemplatesDir holds workspace templates (§13); OrgTemplatesDir org
	// templates (§14), searched by RebuildConfig.
	TemplatesDir    string
	OrgTemplatesDir string
	Log             *slog.Logger
	// StartTimeout bounds one provisioning (default 5 min).
	StartTimeout time.Duration
}

// Manager implements Lifecycle on a backend. Provision only records the
// intent and returns; the work runs in a goroutine, serialised per
// workspace (a request arriving while one runs is coalesced into one more
// run), so no request ever waits on Docker or the control plane.
//
// Across replicas, two provisionings of one workspace can overlap; the
// backend then keeps one agent, which may hold the token the other run
// revoked. That agent's heartbeats fail, the liveness sweep takes the
// workspace offline and provisions it again, which converges.
type Manager struct {
	o      ManagerOptions
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	jobs    map[uuid.UUID]*job
	rebuild map[uuid.UUID]bool
}

type job struct{ again bool }

var _ Lifecycle = (*Manager)(nil)

// NewManager builds a Manager. Close stops its background work.
func NewManager(o ManagerOptions) *Manager {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 5 * time.Minute
	}
	if o.Invalidate == nil {
		o.Invalidate = func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{o: o, log: o.Log, ctx: ctx, cancel: cancel, jobs: map[uuid.UUID]*job{}}
}

// Close cancels running provisionings and waits for them.
func (m *Manager) Close() error {
	m.cancel()
	m.wg.Wait()
	return nil
}

// Wait blocks until no provisioning is running (tests).
func (m *Manager) Wait() { m.wg.Wait() }

// Backend implements Lifecycle.
func (m *Manager) Backend() string {
	if m.o.Backend == nil {
		return "none"
	}
	return m.o.Backend.Name()
}

// Provision implements Lifecycle: the workspace goes `provisioning` now
// (event WORKSPACE_PROVISIONING) and its agent is (re)started in the
// background. External workspaces are left alone (nil): their agent is not
// ours to start. ErrNoBackend without a backend; store.ErrNotFound for a
// removed or unknown workspace.
func (m *Manager) Provision(ctx context.Context, wsID uuid.UUID) error {
	if m.o.Backend == nil {
		return ErrNoBackend
	}
	ws, err := m.o.Store.GetWorkspace(ctx, wsID)
	if err != nil {
		return err
	}
	if ws.External {
		return nil
	}
	prev, err := m.o.Store.BeginProvisioning(ctx, wsID)
	if err != nil {
		return err
	}
	// A caller that already moved the workspace to provisioning (restart,
	// resume, the liveness sweep) recorded the transition itself.
	if prev != store.StatusProvisioning {
		m.record(ctx, EventProvisioning, wsID, map[string]any{"status": store.StatusProvisioning, "previous_status": prev, "backend": m.Backend()})
	}
	m.schedule(wsID)
	return nil
}

// schedule runs provision for wsID, coalescing requests that arrive while
// one is running into a single rerun.
func (m *Manager) schedule(wsID uuid.UUID) {
	m.mu.Lock()
	if j, ok := m.jobs[wsID]; ok {
		j.again = true
		m.mu.Unlock()
		return
	}
	j := &job{}
	m.jobs[wsID] = j
	m.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		for {
			m.provision(wsID)
			m.mu.Lock()
			if !j.again || m.ctx.Err() != nil {
				delete(m.jobs, wsID)
				m.mu.Unlock()
				return
			}
			j.again = false
			m.mu.Unlock()
		}
	}()
}

// cancelPending drops a queued rerun (Stop/Remove supersede it).
func (m *Manager) cancelPending(wsID uuid.UUID) {
	m.mu.Lock()
	if j, ok := m.jobs[wsID]; ok {
		j.again = false
	}
	m.mu.Unlock()
}

// provision does one provisioning of wsID.
func (m *Manager) provision(wsID uuid.UUID) {
	ctx, cancel := context.WithTimeout(m.ctx, m.o.StartTimeout)
	defer cancel()
	log := m.log.With("workspace_id", wsID, "backend", m.Backend())
	ws, err := m.o.Store.GetWorkspace(ctx, wsID)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			log.Error("provision: load workspace", "err", err)
		}
		return
	}
	if stopped(ws.Status) {
		log.Info("provision: skipped, the workspace was stopped meanwhile", "status", ws.Status)
		return
	}

	// A fresh token per (re)provision; the old ones stop working now.
	plain, hash, prefix := auth.NewToken()
	if err := m.o.Store.RotateWorkspaceToken(ctx, store.NewTokenRow{
		ID: uuid.New(), WorkspaceID: wsID, Name: "provisioner", Hash: hash, Prefix: prefix,
	}); err != nil {
		m.fail(ctx, log, wsID, "could not issue the workspace token", err)
		return
	}
	m.o.Invalidate()

	env, err := m.buildEnv(ctx, ws)
	if err != nil {
		var me *provisionhook.MutatorError
		if errors.As(err, &me) {
			m.fail(ctx, log, wsID, err.Error(), err)
		} else {
			m.fail(ctx, log, wsID, "could not build the agent environment", err)
		}
		return
	}

	files, err := m.configFiles(ctx, ws)
	if err != nil {
		m.fail(ctx, log, wsID, "could not prepare the config volume", err)
		return
	}
	files[".auth_token"] = []byte(plain + "\n")

	spec := Spec{
		WorkspaceID: wsID, Name: ws.Name, Runtime: ws.Runtime, Tier: ws.Tier,
		WorkspaceDir: ws.WorkspaceDir, ReadOnly: ws.WorkspaceAccess == "read_only",
		Env: env.List(), Files: files, PlatformURL: env.Get("PLATFORM_URL"), InstanceID: ws.InstanceID,
	}
	inst, err := m.o.Backend.Start(ctx, spec)
	if err != nil {
		reason := "the " + m.Backend() + " backend could not start the agent (see server logs)"
		var missing *ImageMissingError
		if errors.As(err, &missing) {
			reason = missing.Error()
		}
		m.fail(ctx, log, wsID, reason, err)
		return
	}
	ok, err := m.o.Store.SetInstance(ctx, wsID, inst.ID, inst.URL)
	if err != nil {
		log.Error("provision: store instance", "err", err)
		return
	}
	if !ok {
		// Paused or removed while we were starting: undo.
		m.undo(ctx, log, wsID, inst.ID)
		return
	}
	log.Info("agent started", "instance_id", inst.ID, "url", inst.URL)
}

// stopped reports statuses whose agent must not run.
func stopped(status string) bool {
	return status == store.StatusPaused || status == store.StatusHibernated || status == store.StatusRemoved
}

// undo stops or removes an agent started for a workspace that was paused
// or removed meanwhile.
func (m *Manager) undo(ctx context.Context, log *slog.Logger, wsID uuid.UUID, instanceID string) {
	ws, err := m.o.Store.GetWorkspace(ctx, wsID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		err = m.o.Backend.Remove(ctx, wsID, instanceID)
	case err != nil:
		// Unknown state: leave the agent; the orphan sweep and the
		// liveness sweep settle it.
	case stopped(ws.Status):
		err = m.o.Backend.Stop(ctx, wsID, instanceID)
	}
	if err != nil {
		log.Warn("provision: undo after a concurrent pause/delete", "err", err)
	}
}

// fail marks the workspace failed with reason (client-safe) and logs err.
func (m *Manager) fail(ctx context.Context, log *slog.Logger, wsID uuid.UUID, reason string, err error) {
	log.Error("provision failed", "reason", reason, "err", err)
	changed, serr := m.o.Store.FailProvisioning(context.WithoutCancel(ctx), wsID, reason)
	if serr != nil {
		log.Error("provision: mark failed", "err", serr)
		return
	}
	if changed {
		m.record(ctx, EventProvisionFailed, wsID, map[string]any{"status": store.StatusFailed, "error": reason})
	}
}

func (m *Manager) record(ctx context.Context, typ string, wsID uuid.UUID, payload any) {
	if m.o.Events == nil {
		return
	}
	if _, err := m.o.Events.Record(context.WithoutCancel(ctx), typ, wsID, payload); err != nil {
		m.log.Warn("record event", "event", typ, "workspace_id", wsID, "err", err)
	}
}

// buildEnv opens the secrets and builds the §12 environment.
func (m *Manager) buildEnv(ctx context.Context, ws *store.Workspace) (*Env, error) {
	rows, err := m.o.Store.SealedSecrets(ctx, ws.ID)
	if err != nil {
		return nil, err
	}
	// Globals come first, then the workspace's own (workspace wins).
	var globalRows, wsRows []store.SealedSecret
	for _, r := range rows {
		if r.Owner == store.GlobalSecretOwner {
			globalRows = append(globalRows, r)
		} else {
			wsRows = append(wsRows, r)
		}
	}
	global, err := openSecrets(m.o.Keyring, store.GlobalSecretOwner, globalRows)
	if err != nil {
		return nil, err
	}
	own, err := openSecrets(m.o.Keyring, ws.ID.String(), wsRows)
	if err != nil {
		return nil, err
	}
	platform := ""
	if m.o.PlatformURL != nil {
		platform = m.o.PlatformURL()
	}
	info := provisionhook.WorkspaceInfo{ID: ws.ID.String(), Name: ws.Name, Role: ws.Role, Runtime: ws.Runtime, Tier: ws.Tier}
	if ws.ParentID != nil {
		info.ParentID = ws.ParentID.String()
	}
	return BuildEnv(ctx, EnvInput{Workspace: ws, PlatformURL: platform, Global: global, Secrets: own, Hooks: m.o.Hooks, HookInput: info})
}

// Stop implements Lifecycle. A queued reprovision is dropped.
func (m *Manager) Stop(ctx context.Context, wsID uuid.UUID) error {
	if m.o.Backend == nil {
		return nil
	}
	m.cancelPending(wsID)
	return m.o.Backend.Stop(ctx, wsID, m.instanceID(ctx, wsID))
}

// Remove implements Lifecycle. A queued reprovision is dropped.
func (m *Manager) Remove(ctx context.Context, wsID uuid.UUID) error {
	if m.o.Backend == nil {
		return nil
	}
	m.cancelPending(wsID)
	return m.o.Backend.Remove(ctx, wsID, m.instanceID(ctx, wsID))
}

// IsRunning implements Lifecycle.
func (m *Manager) IsRunning(ctx context.Context, wsID uuid.UUID) (bool, error) {
	if m.o.Backend == nil {
		return true, ErrNoBackend
	}
	return m.o.Backend.IsRunning(ctx, wsID, m.instanceID(ctx, wsID))
}

// instanceID reads the stored instance id, removed workspaces included
// ("" when unknown: the Docker backend names containers by workspace id).
func (m *Manager) instanceID(ctx context.Context, wsID uuid.UUID) string {
	id, err := m.o.Store.WorkspaceInstanceID(ctx, wsID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		m.log.Warn("load instance id", "workspace_id", wsID, "err", err)
	}
	return id
}

// RestartIfDead is the liveness sweep's hook (§5): when the backend says
// the agent is gone (IsRunning false with no error), the workspace goes
// offline (one replica wins the claim) and is provisioned again. A
// transient backend error restarts nothing.
func (m *Manager) RestartIfDead(ctx context.Context, wsID uuid.UUID) (bool, error) {
	if m.o.Backend == nil {
		return false, nil
	}
	running, err := m.IsRunning(ctx, wsID)
	if err != nil || running {
		return false, err
	}
	claimed, err := m.o.Store.ClaimDeadWorkspace(ctx, wsID)
	if err != nil || !claimed {
		return false, err
	}
	m.record(ctx, EventOffline, wsID, map[string]any{"status": store.StatusOffline, "reason": "agent instance is not running"})
	if err := m.Provision(ctx, wsID); err != nil {
		return false, err
	}
	return true, nil
}

// WatchInstances is a background loop: every online/degraded provisioned
// workspace whose instance is gone is restarted (RestartIfDead). One
// replica checks per tick (advisory lock), and the per-workspace claim
// keeps a restart single even if two ever overlap.
func (m *Manager) WatchInstances(ctx context.Context) error {
	if m.o.Backend == nil {
		return nil
	}
	_, err := m.o.Store.TryAdvisoryLock(ctx, watchLockKey, m.watchInstances)
	return err
}

// watchLockKey is the advisory lock of WatchInstances.
const watchLockKey = 0x6d6f6c7761746368 // "molwatch"

func (m *Manager) watchInstances(ctx context.Context) error {
	ids, err := m.o.Store.LiveProvisionedWorkspaces(ctx, 500)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if restarted, err := m.RestartIfDead(ctx, id); err != nil {
			errs = append(errs, err)
		} else if restarted {
			m.log.Info("agent instance was gone; restarting", "workspace_id", id)
		}
	}
	if len(errs) > 0 {
		m.log.Warn("instance watch: backend errors (no restart)", "count", len(errs), "first", errs[0])
	}
	return nil
}

// ListFiles implements ConfigFiles.
func (m *Manager) ListFiles(ctx context.Context, wsID uuid.UUID, dir string, depth int) ([]FileInfo, error) {
	if m.o.Backend == nil {
		return nil, ErrNoBackend
	}
	return m.o.Backend.ListFiles(ctx, wsID, dir, depth)
}

// ReadFile implements ConfigFiles.
func (m *Manager) ReadFile(ctx context.Context, wsID uuid.UUID, path string) ([]byte, error) {
	if m.o.Backend == nil {
		return nil, ErrNoBackend
	}
	return m.o.Backend.ReadFile(ctx, wsID, path)
}

// WriteFiles implements ConfigFiles.
func (m *Manager) WriteFiles(ctx context.Context, wsID uuid.UUID, files map[string][]byte) error {
	if m.o.Backend == nil {
		return ErrNoBackend
	}
	return m.o.Backend.WriteFiles(ctx, wsID, files)
}

// DeletePath implements ConfigFiles.
func (m *Manager) DeletePath(ctx context.Context, wsID uuid.UUID, path string) error {
	if m.o.Backend == nil {
		return ErrNoBackend
	}
	return m.o.Backend.DeletePath(ctx, wsID, path)
}
