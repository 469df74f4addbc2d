package api

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"
	dto "github.com/prometheus/client_model/go"

	"github.com/moleculesai/molecule/internal/apptest/kit"
	"github.com/moleculesai/molecule/internal/provisioner/provisionertest"
	"github.com/moleculesai/molecule/internal/store"
)

// a2aWorkspace inserts an online workspace whose agent is at url.
func a2aWorkspace(t *testing.T, h *TestServer, external bool, url string) uuid.UUID {
	t.Helper()
	id, _ := h.Workspace(&store.Workspace{Name: "w", External: external, URL: url})
	return id
}

// callA2A sends an A2A message to the workspace as the admin.
func callA2A(h *TestServer, id uuid.UUID) *kit.Response {
	return h.Do("POST", "/workspaces/"+id.String()+"/a2a", h.Admin, `{"message":{"parts":[]}}`)
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
	lc := provisionertest.New()
	lc.SetRunning(false, nil)
	h := NewTestServer(t, TestServerOptions{Lifecycle: lc, Background: true})
	ctx := context.Background()

	// Found dead: offline, restarted once, 503 with Retry-After.
	id := a2aWorkspace(t, h, false, a2aDeadURL(t))
	resp := callA2A(h, id)
	if resp.Status != 503 || resp.Header.Get("Retry-After") == "" || !bytes.Contains(resp.Body, []byte(`"workspace agent unavailable"`)) {
		t.Fatalf("dead agent: %d %s", resp.Status, resp.Body)
	}
	ws, _ := h.Store.GetWorkspace(ctx, id)
	if ws.Status != store.StatusOffline {
		t.Fatalf("status %s, want offline", ws.Status)
	}
	if p := lc.Total("provision"); p != 1 {
		t.Fatalf("%d restarts, want 1", p)
	}
	if n := kit.Count(t, h.Store.DB, "events", "workspace_id = $1 AND event_type = 'WORKSPACE_OFFLINE'", id); n != 1 {
		t.Fatalf("%d WORKSPACE_OFFLINE events", n)
	}
	// Already offline: answered 503 again, but restarted only once.
	if resp := callA2A(h, id); resp.Status != 503 {
		t.Fatalf("second call: %d", resp.Status)
	}
	if p := lc.Total("provision"); p != 1 {
		t.Fatalf("restarted again: %d", p)
	}

	// A transient provisioner error never restarts: 502.
	lc.SetRunning(true, errors.New("docker: i/o timeout"))
	id2 := a2aWorkspace(t, h, false, a2aDeadURL(t))
	resp = callA2A(h, id2)
	if resp.Status != 502 || !bytes.Contains(resp.Body, []byte("upstream_error")) || bytes.Contains(resp.Body, []byte("docker")) {
		t.Fatalf("transient: %d %s", resp.Status, resp.Body)
	}
	if ws, _ := h.Store.GetWorkspace(ctx, id2); ws.Status != store.StatusOnline {
		t.Fatalf("transient error changed status to %s", ws.Status)
	}
	// Running but unreachable: 502.
	lc.SetRunning(true, nil)
	if resp := callA2A(h, id2); resp.Status != 502 {
		t.Fatalf("running but unreachable: %d", resp.Status)
	}
	// External workspaces have no container of ours: never checked.
	lc.SetRunning(false, nil)
	checks := lc.Total("isrunning")
	id3 := a2aWorkspace(t, h, true, a2aDeadURL(t))
	if resp := callA2A(h, id3); resp.Status != 502 {
		t.Fatalf("external: %d", resp.Status)
	}
	if c, p := lc.Total("isrunning"), lc.Total("provision"); c != checks || p != 1 {
		t.Fatalf("external workspace was checked (%d→%d) or restarted (%d)", checks, c, p)
	}
	// A paused workspace whose container is gone is not restarted.
	id4 := a2aWorkspace(t, h, false, a2aDeadURL(t))
	if _, err := h.Store.DB.Exec(`UPDATE workspaces SET status = 'paused' WHERE id = $1`, id4); err != nil {
		t.Fatal(err)
	}
	h.Server.InvalidateA2A(id4)
	if resp := callA2A(h, id4); resp.Status != 503 {
		t.Fatalf("paused: %d", resp.Status)
	}
	if p := lc.Total("provision"); p != 1 {
		t.Fatal("a paused workspace was restarted")
	}
}

// A budget the database cannot give does not block the call; it is
// logged and counted.
func TestA2ABudgetCheckErrorLetsCallThrough(t *testing.T) {
	h := NewTestServer(t, TestServerOptions{Background: true})
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{}}`))
	}))
	defer agent.Close()
	id := a2aWorkspace(t, h, true, agent.URL)
	h.Server.a2a.budgets.Load = func(context.Context, uuid.UUID) (store.BudgetState, error) {
		return store.BudgetState{}, store.ErrUnavailable
	}
	for range 3 {
		if resp := callA2A(h, id); resp.Status != 200 {
			t.Fatalf("budget error blocked the call: %d %s", resp.Status, resp.Body)
		}
	}
	var m dto.Metric
	if err := h.Server.a2a.budgetErrors.Write(&m); err != nil || m.GetCounter().GetValue() != 3 {
		t.Fatalf("budget error counter = %v", m.GetCounter().GetValue())
	}
	// The counter is exposed on the server's registry.
	fams, _ := h.Metrics.Gather()
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
	h := NewTestServer(t, TestServerOptions{})
	s, st := h.Server, h.Store
	ctx := context.Background()
	ws := &store.Workspace{Name: "w", External: true}
	h.Workspace(ws)
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
