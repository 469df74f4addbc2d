package api

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/moleculesai/molecule/internal/auth"
	"github.com/moleculesai/molecule/internal/config"
	"github.com/moleculesai/molecule/internal/events"
	"github.com/moleculesai/molecule/internal/provisioner"
	"github.com/moleculesai/molecule/internal/runloop"
	"github.com/moleculesai/molecule/internal/store"
	"github.com/moleculesai/molecule/internal/testutil"
)

// scriptedLifecycle reports a scripted IsRunning and records restarts.
type scriptedLifecycle struct {
	provisioner.Unavailable
	mu         sync.Mutex
	running    bool
	runErr     error
	checks     int
	provisions []uuid.UUID
}

func (f *scriptedLifecycle) Backend() string { return "fake" }

func (f *scriptedLifecycle) IsRunning(context.Context, uuid.UUID) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks++
	return f.running, f.runErr
}

func (f *scriptedLifecycle) Provision(_ context.Context, id uuid.UUID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.provisions = append(f.provisions, id)
	return nil
}

func (f *scriptedLifecycle) set(running bool, err error) {
	f.mu.Lock()
	f.running, f.runErr = running, err
	f.mu.Unlock()
}

func (f *scriptedLifecycle) counts() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.checks, len(f.provisions)
}

type a2aHarness struct {
	s     *Server
	st    *store.Store
	url   string
	admin string
	reg   *prometheus.Registry
}

// newA2AHarness runs a Server (not the whole app) with a scripted provisioner.
func newA2AHarness(t *testing.T, lc provisioner.Lifecycle) *a2aHarness {
	t.Helper()
	st := testutil.NewStore(t)
	cfg, err := config.Load(config.FromMap(map[string]string{"DATABASE_URL": "postgres://unused/db"}))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	admin := "admin-" + uuid.NewString()
	hub := events.NewHub()
	br := events.NewBroadcaster(st, nil, hub, log)
	reg := prometheus.NewRegistry()
	s, h := NewServer(Deps{Config: cfg, Store: st, Auth: auth.New(admin, st), Events: br, Hub: hub,
		Lifecycle: lc, Metrics: reg, Log: log, Loops: runloop.NewRunner(log)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go br.Run(ctx)
	go func() { s.RunBackground(ctx); close(done) }()
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); cancel(); <-done })
	return &a2aHarness{s: s, st: st, url: srv.URL, admin: admin, reg: reg}
}

func (h *a2aHarness) workspace(t *testing.T, external bool, url string) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	ws := &store.Workspace{ID: uuid.New(), Name: "w", Status: store.StatusOnline, External: external, URL: url}
	if err := h.st.Tx(ctx, func(tx *sql.Tx) error { return store.InsertWorkspaceTx(ctx, tx, ws) }); err != nil {
		t.Fatal(err)
	}
	return ws.ID
}

func (h *a2aHarness) call(t *testing.T, id uuid.UUID) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", h.url+"/workspaces/"+id.String()+"/a2a", bytes.NewBufferString(`{"message":{"parts":[]}}`))
	req.Header.Set("Authorization", "Bearer "+h.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func a2aDeadURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

func TestA2ADeadContainerIsRestarted(t *testing.T) {
	lc := &scriptedLifecycle{}
	h := newA2AHarness(t, lc)
	ctx := context.Background()

	// Found dead: offline, restarted once, 503 with Retry-After.
	id := h.workspace(t, false, a2aDeadURL(t))
	resp, body := h.call(t, id)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !bytes.Contains(body, []byte(`"workspace agent unavailable"`)) {
		t.Fatalf("dead agent: %d %s", resp.StatusCode, body)
	}
	ws, _ := h.st.GetWorkspace(ctx, id)
	if ws.Status != store.StatusOffline {
		t.Fatalf("status %s, want offline", ws.Status)
	}
	if _, p := lc.counts(); p != 1 {
		t.Fatalf("%d restarts, want 1", p)
	}
	var n int
	_ = h.st.DB.QueryRow(`SELECT count(*) FROM events WHERE workspace_id = $1 AND event_type = 'WORKSPACE_OFFLINE'`, id).Scan(&n)
	if n != 1 {
		t.Fatalf("%d WORKSPACE_OFFLINE events", n)
	}
	// Already offline: answered 503 again, but restarted only once.
	if resp, _ := h.call(t, id); resp.StatusCode != 503 {
		t.Fatalf("second call: %d", resp.StatusCode)
	}
	if _, p := lc.counts(); p != 1 {
		t.Fatalf("restarted again: %d", p)
	}

	// A transient provisioner error never restarts: 502.
	lc.set(true, errors.New("docker: i/o timeout"))
	id2 := h.workspace(t, false, a2aDeadURL(t))
	resp, body = h.call(t, id2)
	if resp.StatusCode != 502 || !bytes.Contains(body, []byte("upstream_error")) || bytes.Contains(body, []byte("docker")) {
		t.Fatalf("transient: %d %s", resp.StatusCode, body)
	}
	if ws, _ := h.st.GetWorkspace(ctx, id2); ws.Status != store.StatusOnline {
		t.Fatalf("transient error changed status to %s", ws.Status)
	}
	// Running but unreachable: 502.
	lc.set(true, nil)
	if resp, _ := h.call(t, id2); resp.StatusCode != 502 {
		t.Fatalf("running but unreachable: %d", resp.StatusCode)
	}
	// External workspaces have no container of ours: never checked.
	lc.set(false, nil)
	checks, _ := lc.counts()
	id3 := h.workspace(t, true, a2aDeadURL(t))
	if resp, _ := h.call(t, id3); resp.StatusCode != 502 {
		t.Fatalf("external: %d", resp.StatusCode)
	}
	if c, p := lc.counts(); c != checks || p != 1 {
		t.Fatalf("external workspace was checked (%d→%d) or restarted (%d)", checks, c, p)
	}
	// A paused workspace whose container is gone is not restarted.
	id4 := h.workspace(t, false, a2aDeadURL(t))
	if _, err := h.st.DB.Exec(`UPDATE workspaces SET status = 'paused' WHERE id = $1`, id4); err != nil {
		t.Fatal(err)
	}
	h.s.InvalidateA2A(id4)
	if resp, _ := h.call(t, id4); resp.StatusCode != 503 {
		t.Fatalf("paused: %d", resp.StatusCode)
	}
	if _, p := lc.counts(); p != 1 {
		t.Fatal("a paused workspace was restarted")
	}
}

// A budget the database cannot give does not block the call; it is
// logged and counted.
func TestA2ABudgetCheckErrorLetsCallThrough(t *testing.T) {
	h := newA2AHarness(t, nil)
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{}}`))
	}))
	defer agent.Close()
	id := h.workspace(t, true, agent.URL)
	h.s.a2a.budgets.Load = func(context.Context, uuid.UUID) (store.BudgetState, error) {
		return store.BudgetState{}, store.ErrUnavailable
	}
	for range 3 {
		if resp, body := h.call(t, id); resp.StatusCode != 200 {
			t.Fatalf("budget error blocked the call: %d %s", resp.StatusCode, body)
		}
	}
	var m dto.Metric
	if err := h.s.a2a.budgetErrors.Write(&m); err != nil || m.GetCounter().GetValue() != 3 {
		t.Fatalf("budget error counter = %v", m.GetCounter().GetValue())
	}
	// The counter is exposed on the server's registry.
	fams, _ := h.reg.Gather()
	found := false
	for _, f := range fams {
		found = found || f.GetName() == "molecule_a2a_budget_check_errors_total"
	}
	if !found {
		t.Fatal("budget error metric not registered")
	}
}

// Stopping the server writes queued metering and activity.
func TestA2ARecorderFlushedOnStop(t *testing.T) {
	st := testutil.NewStore(t)
	cfg, _ := config.Load(config.FromMap(map[string]string{"DATABASE_URL": "postgres://unused/db"}))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	hub := events.NewHub()
	s, _ := NewServer(Deps{Config: cfg, Store: st, Auth: auth.New("a", st), Events: events.NewBroadcaster(st, nil, hub, log),
		Hub: hub, Metrics: prometheus.NewRegistry(), Log: log})
	ctx := context.Background()
	ws := &store.Workspace{ID: uuid.New(), Name: "w", Status: store.StatusOnline, External: true}
	if err := st.Tx(ctx, func(tx *sql.Tx) error { return store.InsertWorkspaceTx(ctx, tx, ws) }); err != nil {
		t.Fatal(err)
	}
	s.a2a.rec.Usage(store.UsageDelta{WorkspaceID: ws.ID, Day: time.Now(), InputTokens: 7, Calls: 1, CostMicroUSD: 21})
	s.RecordActivity(store.Activity{WorkspaceID: ws.ID, ActivityType: "cron_run", Summary: "nightly"})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { s.RunBackground(runCtx); close(done) }()
	stop()
	<-done
	u, err := st.UsageBetween(ctx, ws.ID, time.Now().AddDate(0, 0, -1), time.Now().AddDate(0, 0, 1))
	if err != nil || u.InputTokens != 7 || u.Calls != 1 || u.CostUSD != "0.000021" {
		t.Fatalf("usage after stop: %+v %v", u, err)
	}
	rows, _ := st.ListActivity(ctx, ws.ID, "cron_run", 10, 0)
	if len(rows) != 1 || rows[0].Summary != "nightly" {
		t.Fatalf("activity after stop: %+v", rows)
	}
}
