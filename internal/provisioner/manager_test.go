package provisioner

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"gopkg.in/yaml.v3"

	"github.com/moleculesai/molecule/internal/auth"
	"github.com/moleculesai/molecule/internal/events"
	"github.com/moleculesai/molecule/internal/secrets"
	"github.com/moleculesai/molecule/internal/store"
	"github.com/moleculesai/molecule/internal/testutil"
	"github.com/moleculesai/molecule/pkg/provisionhook"
)

// fakeBackend records what the Manager asks of a backend; its config
// volume is an in-memory map per workspace.
type fakeBackend struct {
	mu       sync.Mutex
	starts   []Spec
	volumes  map[uuid.UUID]map[string][]byte
	running  map[uuid.UUID]bool
	startErr error
	runErr   error
	block    chan struct{} // when set, Start waits on it
	onStart  func()        // runs inside Start (e.g. the agent registering)
	stops    int
	removes  int
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{volumes: map[uuid.UUID]map[string][]byte{}, running: map[uuid.UUID]bool{}}
}

func (f *fakeBackend) Name() string { return "fake" }
func (f *fakeBackend) Start(ctx context.Context, s Spec) (Instance, error) {
	if f.block != nil {
		<-f.block
	}
	if f.onStart != nil {
		f.onStart()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts = append(f.starts, s)
	if f.startErr != nil {
		return Instance{}, f.startErr
	}
	v := f.volumes[s.WorkspaceID]
	if v == nil {
		v = map[string][]byte{}
		f.volumes[s.WorkspaceID] = v
	}
	for k, b := range s.Files {
		v[k] = b
	}
	f.running[s.WorkspaceID] = true
	return Instance{ID: "inst-" + uuid.NewString()[:6], URL: "http://agent.test:8000"}, nil
}
func (f *fakeBackend) Stop(_ context.Context, id uuid.UUID, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stops++
	f.running[id] = false
	return nil
}
func (f *fakeBackend) Remove(_ context.Context, id uuid.UUID, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removes++
	delete(f.running, id)
	delete(f.volumes, id)
	return nil
}
func (f *fakeBackend) IsRunning(_ context.Context, id uuid.UUID, _ string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.runErr != nil {
		return true, f.runErr
	}
	return f.running[id], nil
}
func (f *fakeBackend) ListFiles(context.Context, uuid.UUID, string, int) ([]FileInfo, error) {
	return nil, ErrUnsupported
}
func (f *fakeBackend) ReadFile(_ context.Context, id uuid.UUID, p string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.volumes[id][p]
	if !ok {
		return nil, ErrNotFound
	}
	return b, nil
}
func (f *fakeBackend) WriteFiles(context.Context, uuid.UUID, map[string][]byte) error { return nil }
func (f *fakeBackend) DeletePath(context.Context, uuid.UUID, string) error            { return nil }

func (f *fakeBackend) startCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.starts)
}

type rig struct {
	st   *store.Store
	be   *fakeBackend
	m    *Manager
	kr   *secrets.Keyring
	auth *auth.Authenticator
	hub  *events.Hub
}

func newRig(t *testing.T, hooks *provisionhook.Registry, orgDir string) *rig {
	t.Helper()
	st := testutil.NewStore(t)
	key := make([]byte, 32)
	kr, err := secrets.NewKeyring(secrets.Key{ID: secrets.KeyID(key), Secret: key})
	if err != nil {
		t.Fatal(err)
	}
	a := auth.New("admin-x", st)
	hub := events.NewHub()
	pub := events.NewBroadcaster(st, nil, hub, nil)
	be := newFakeBackend()
	m := NewManager(ManagerOptions{Store: st, Backend: be, Keyring: kr, Hooks: hooks, Events: pub,
		Invalidate: a.Invalidate, PlatformURL: func() string { return "http://platform.test" }, OrgTemplatesDir: orgDir})
	t.Cleanup(func() { m.Close() })
	return &rig{st: st, be: be, m: m, kr: kr, auth: a, hub: hub}
}

func (r *rig) workspace(t *testing.T, name, role string) uuid.UUID {
	t.Helper()
	id := uuid.New()
	err := r.st.Tx(context.Background(), func(tx *sql.Tx) error {
		return store.InsertWorkspaceTx(context.Background(), tx, &store.Workspace{ID: id, Name: name, Role: role, Status: store.StatusProvisioning})
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (r *rig) events(t *testing.T, id uuid.UUID, typ string) int {
	var n int
	if err := r.st.DB.QueryRow(`SELECT count(*) FROM events WHERE workspace_id = $1 AND event_type = $2`, id, typ).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestManagerProvision(t *testing.T) {
	r := newRig(t, nil, "")
	ctx := context.Background()
	id := r.workspace(t, "Backend Dev", "engineer")
	// An old token the provisioning must revoke.
	oldPlain, oldHash, oldPrefix := auth.NewToken()
	if _, err := r.st.CreateWorkspaceToken(ctx, store.NewTokenRow{ID: uuid.New(), WorkspaceID: id, Hash: oldHash, Prefix: oldPrefix}); err != nil {
		t.Fatal(err)
	}
	if p, ok, err := r.auth.Bearer(ctx, oldPlain); err != nil || !ok || !p.IsWorkspace(id) {
		t.Fatalf("old token before: %v %v %v", p, ok, err)
	}
	sealed, _ := r.kr.Seal([]byte("sk-ws"), id.String(), "OPENAI_API_KEY")
	if _, err := r.st.DB.Exec(`INSERT INTO workspace_secrets (workspace_id, key, sealed, key_id) VALUES ($1, 'OPENAI_API_KEY', $2, $3)`, id, sealed, r.kr.ActiveID()); err != nil {
		t.Fatal(err)
	}

	// From offline: Provision records the transition itself.
	if _, err := r.st.DB.Exec(`UPDATE workspaces SET status = 'offline' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if err := r.m.Provision(ctx, id); err != nil {
		t.Fatal(err)
	}
	r.m.Wait()
	if r.be.startCount() != 1 {
		t.Fatalf("starts = %d", r.be.startCount())
	}
	spec := r.be.starts[0]
	if !strings.HasPrefix(strings.Join(spec.Env, "\n"), "WORKSPACE_ID="+id.String()+"\nPLATFORM_URL=http://platform.test\nMOLECULE_URL=http://platform.test\nWORKSPACE_CONFIG_PATH=/configs\nTIER=2\nPYTHONPATH=/app\nOPENAI_API_KEY=sk-ws\n") {
		t.Errorf("env %v", spec.Env)
	}
	tok := strings.TrimSpace(string(spec.Files[".auth_token"]))
	p, ok, err := r.auth.Bearer(ctx, tok)
	if err != nil || !ok || !p.IsWorkspace(id) {
		t.Fatalf("new token: %v %v %v", p, ok, err)
	}
	// The old token was cached by the lookup above: Invalidate must make
	// the revocation apply at once.
	if _, ok, _ := r.auth.Bearer(ctx, oldPlain); ok {
		t.Errorf("old token still valid after provisioning")
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(spec.Files["config.yaml"], &cfg); err != nil || cfg["name"] != "Backend Dev" || cfg["role"] != "engineer" {
		t.Errorf("config.yaml %v %v", cfg, err)
	}
	if !strings.Contains(string(spec.Files["system-prompt.md"]), "Backend Dev") {
		t.Errorf("system prompt %q", spec.Files["system-prompt.md"])
	}
	w, _ := r.st.GetWorkspace(ctx, id)
	if w.InstanceID == "" || w.URL != "http://agent.test:8000" || w.Status != store.StatusProvisioning {
		t.Errorf("after start: %+v", w)
	}
	if r.events(t, id, EventProvisioning) != 1 {
		t.Errorf("no provisioning event")
	}

	// A re-provision keeps the existing config (edited through the files
	// API), writes only a fresh token.
	if err := r.m.Provision(ctx, id); err != nil {
		t.Fatal(err)
	}
	r.m.Wait()
	second := r.be.starts[1]
	if _, ok := second.Files["config.yaml"]; ok || len(second.Files) != 1 {
		t.Errorf("reprovision rewrote the config: %v", SortedKeys(second.Files))
	}
	if string(second.Files[".auth_token"]) == string(spec.Files[".auth_token"]) {
		t.Errorf("token not rotated")
	}
	// Already provisioning (the caller recorded the transition): no duplicate.
	if n := r.events(t, id, EventProvisioning); n != 1 {
		t.Errorf("provisioning events = %d, want 1", n)
	}

	// Unknown, removed and external workspaces.
	if err := r.m.Provision(ctx, uuid.New()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown: %v", err)
	}
}

func TestManagerMutatorFailure(t *testing.T) {
	reg := provisionhook.NewRegistry()
	reg.Register(mutFunc{"vault", func(map[string]string) error { return errors.New("vault is sealed") }})
	r := newRig(t, reg, "")
	ctx := context.Background()
	id := r.workspace(t, "W", "")
	if err := r.m.Provision(ctx, id); err != nil {
		t.Fatal(err)
	}
	r.m.Wait()
	w, _ := r.st.GetWorkspace(ctx, id)
	if w.Status != store.StatusFailed || !strings.Contains(w.LastSampleError, "vault is sealed") {
		t.Fatalf("status %q error %q", w.Status, w.LastSampleError)
	}
	if r.be.startCount() != 0 {
		t.Errorf("agent started despite the hook error")
	}
	if r.events(t, id, EventProvisionFailed) != 1 {
		t.Errorf("no WORKSPACE_PROVISION_FAILED event")
	}
}

func TestManagerBackendFailureIsOpaque(t *testing.T) {
	r := newRig(t, nil, "")
	r.be.startErr = errors.New("Error response from daemon: conflict at /var/lib/docker/secret-path")
	id := r.workspace(t, "W", "")
	if err := r.m.Provision(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	r.m.Wait()
	w, _ := r.st.GetWorkspace(context.Background(), id)
	if w.Status != store.StatusFailed || strings.Contains(w.LastSampleError, "/var/lib/docker") || w.LastSampleError == "" {
		t.Fatalf("status %q error %q", w.Status, w.LastSampleError)
	}
}

func TestManagerCoalescesAndUndoes(t *testing.T) {
	r := newRig(t, nil, "")
	ctx := context.Background()
	id := r.workspace(t, "W", "")
	r.be.block = make(chan struct{})
	for i := 0; i < 5; i++ {
		if err := r.m.Provision(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	close(r.be.block)
	r.m.Wait()
	// One run plus one coalesced rerun, never five.
	if n := r.be.startCount(); n != 2 {
		t.Errorf("starts = %d, want 2", n)
	}

	// A workspace paused while its agent was starting gets stopped.
	id2 := r.workspace(t, "W2", "")
	r.be.block = make(chan struct{})
	if err := r.m.Provision(ctx, id2); err != nil {
		t.Fatal(err)
	}
	if _, err := r.st.DB.Exec(`UPDATE workspaces SET status = 'paused' WHERE id = $1`, id2); err != nil {
		t.Fatal(err)
	}
	close(r.be.block)
	r.m.Wait()
	// Whether the job saw `paused` before starting (nothing started) or
	// after (started, then stopped), no agent is left running.
	r.be.mu.Lock()
	running := r.be.running[id2]
	r.be.mu.Unlock()
	if running {
		t.Errorf("agent of a workspace paused during provisioning is running")
	}
	w, _ := r.st.GetWorkspace(ctx, id2)
	if w.Status != store.StatusPaused {
		t.Errorf("status %q, want paused", w.Status)
	}
}

func TestManagerRestartIfDead(t *testing.T) {
	r := newRig(t, nil, "")
	ctx := context.Background()
	id := r.workspace(t, "W", "")
	if err := r.m.Provision(ctx, id); err != nil {
		t.Fatal(err)
	}
	r.m.Wait()
	if _, err := r.st.DB.Exec(`UPDATE workspaces SET status = 'online' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	// Running: nothing happens.
	if restarted, err := r.m.RestartIfDead(ctx, id); restarted || err != nil {
		t.Fatalf("running: %v %v", restarted, err)
	}
	// A transient backend error never restarts.
	r.be.mu.Lock()
	r.be.running[id] = false
	r.be.runErr = errors.New("i/o timeout")
	r.be.mu.Unlock()
	if restarted, err := r.m.RestartIfDead(ctx, id); restarted || err == nil {
		t.Fatalf("transient: %v %v", restarted, err)
	}
	r.be.mu.Lock()
	r.be.runErr = nil
	r.be.mu.Unlock()
	// Dead: exactly one of several concurrent sweeps restarts it.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := r.m.RestartIfDead(ctx, id)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r.m.Wait()
	if wins != 1 || r.be.startCount() != 2 {
		t.Fatalf("wins=%d starts=%d", wins, r.be.startCount())
	}
	if r.events(t, id, EventOffline) != 1 {
		t.Errorf("offline events = %d", r.events(t, id, EventOffline))
	}
	// The loop form finds nothing to do now (status provisioning).
	if err := r.m.WatchInstances(ctx); err != nil {
		t.Fatal(err)
	}
	if r.be.startCount() != 2 {
		t.Errorf("watch restarted a provisioning workspace")
	}
}

func TestManagerRebuildConfig(t *testing.T) {
	dir := t.TempDir()
	org := filepath.Join(dir, "acme")
	if err := os.MkdirAll(filepath.Join(org, "qa-files"), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(org, "qa-files", "checklist.md"), []byte("- test it\n"), 0o644)
	_ = os.WriteFile(filepath.Join(org, "org.yaml"), []byte(`name: Acme
workspaces:
  - name: Lead
    role: lead
    system_prompt: You lead.
    children:
      - name: Tester
        role: qa
        model: claude-x
        system_prompt: You test everything.
        files_dir: qa-files
`), 0o644)
	r := newRig(t, nil, dir)
	ctx := context.Background()
	id := r.workspace(t, "Some QA", "qa")
	if err := r.m.Provision(ctx, id); err != nil {
		t.Fatal(err)
	}
	r.m.Wait()
	w, _ := r.st.GetWorkspace(ctx, id)
	if err := r.m.RebuildConfig(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := r.m.Provision(ctx, id); err != nil {
		t.Fatal(err)
	}
	r.m.Wait()
	last := r.be.starts[len(r.be.starts)-1]
	if string(last.Files["system-prompt.md"]) != "You test everything." || string(last.Files["checklist.md"]) != "- test it\n" {
		t.Errorf("rebuilt files: %v", SortedKeys(last.Files))
	}
	var cfg map[string]any
	_ = yaml.Unmarshal(last.Files["config.yaml"], &cfg)
	if cfg["model"] != "claude-x" || cfg["name"] != "Some QA" {
		t.Errorf("config %v", cfg)
	}
	// By name when no role matches.
	byName, _ := r.st.GetWorkspace(ctx, r.workspace(t, "Lead", ""))
	if err := r.m.RebuildConfig(ctx, byName); err != nil {
		t.Errorf("by name: %v", err)
	}
	// Provenance from an org import wins over role and name.
	imported := r.workspace(t, "Renamed", "qa")
	if _, err := r.st.DB.Exec(`UPDATE workspaces SET org_template = 'dir:acme', org_node = 'Lead' WHERE id = $1`, imported); err != nil {
		t.Fatal(err)
	}
	iw, _ := r.st.GetWorkspace(ctx, imported)
	if org, n, err := r.m.findOrgNode(iw); err != nil || n.Name != "Lead" || org.Name != "Acme" {
		t.Errorf("provenance: %v %v", n, err)
	}
	none, _ := r.st.GetWorkspace(ctx, r.workspace(t, "Nobody", "astronaut"))
	if err := r.m.RebuildConfig(ctx, none); !errors.Is(err, ErrNoTemplateMatch) || !errors.Is(err, store.ErrNotFound) {
		t.Errorf("no match: %v", err)
	}
}

func TestManagerWithoutBackend(t *testing.T) {
	m := NewManager(ManagerOptions{})
	defer m.Close()
	ctx := context.Background()
	if m.Backend() != "none" {
		t.Fatal(m.Backend())
	}
	if err := m.Provision(ctx, uuid.New()); !errors.Is(err, ErrNoBackend) {
		t.Errorf("provision: %v", err)
	}
	if up, err := m.IsRunning(ctx, uuid.New()); !up || !errors.Is(err, ErrNoBackend) {
		t.Errorf("is running: %v %v", up, err)
	}
	if _, err := m.ReadFile(ctx, uuid.New(), "x"); !errors.Is(err, ErrNoBackend) {
		t.Errorf("read: %v", err)
	}
	if err := m.Stop(ctx, uuid.New()); err != nil {
		t.Errorf("stop: %v", err)
	}
}

// The agent starts before the Manager stores its instance: an agent that
// registered (online) by then must keep running and get its instance id.
func TestManagerAgentRegistersBeforeInstanceStored(t *testing.T) {
	r := newRig(t, nil, "")
	ctx := context.Background()
	id := r.workspace(t, "Fast", "")
	r.be.onStart = func() {
		if _, err := r.st.DB.Exec(`UPDATE workspaces SET status = 'online' WHERE id = $1`, id); err != nil {
			t.Error(err)
		}
	}
	if err := r.m.Provision(ctx, id); err != nil {
		t.Fatal(err)
	}
	r.m.Wait()
	w, _ := r.st.GetWorkspace(ctx, id)
	if w.Status != store.StatusOnline || w.InstanceID == "" || r.be.stops != 0 {
		t.Fatalf("status %q instance %q stops %d", w.Status, w.InstanceID, r.be.stops)
	}
}

func TestManagerMissingImageReason(t *testing.T) {
	r := newRig(t, nil, "")
	r.be.startErr = &ImageMissingError{Image: "molecule/workspace-agent:latest"}
	id := r.workspace(t, "W", "")
	if err := r.m.Provision(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	r.m.Wait()
	w, _ := r.st.GetWorkspace(context.Background(), id)
	if w.Status != store.StatusFailed || !strings.Contains(w.LastSampleError, "make agent-image") {
		t.Fatalf("status %q error %q", w.Status, w.LastSampleError)
	}
}
