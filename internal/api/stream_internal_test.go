package api

import (
	"bufio"
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/moleculesai/molecule/internal/auth"
	"github.com/moleculesai/molecule/internal/config"
	"github.com/moleculesai/molecule/internal/events"
	"github.com/moleculesai/molecule/internal/store"
	"github.com/moleculesai/molecule/internal/testutil"
)

// streamServer builds a bare server (no app) whose stream timings and
// shutdown channel the test controls.
func streamServer(t *testing.T) (*Server, *httptest.Server, *events.Hub, chan struct{}, uuid.UUID) {
	t.Helper()
	st := testutil.NewStore(t)
	cfg, err := config.Load(config.FromMap(map[string]string{"DATABASE_URL": "postgres://x@localhost/x", "ADMIN_TOKEN": "admin"}))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	hub := events.NewHub()
	shutdown := make(chan struct{})
	s, h := NewServer(Deps{Config: cfg, Store: st, Auth: auth.New("admin", st), Hub: hub,
		Events: events.NewBroadcaster(st, nil, hub, log), Metrics: prometheus.NewRegistry(), Log: log, Shutdown: shutdown})
	ws := &store.Workspace{ID: uuid.New(), Name: "a", Status: store.StatusOnline}
	if err := st.Tx(context.Background(), func(tx *sql.Tx) error { return store.InsertWorkspaceTx(context.Background(), tx, ws) }); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return s, srv, hub, shutdown, ws.ID
}

func openStream(t *testing.T, url string, ws uuid.UUID) (*http.Response, *bufio.Reader) {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/workspaces/"+ws.String()+"/events/stream", nil)
	req.Header.Set("Authorization", "Bearer admin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("open stream: %v %v", resp, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, bufio.NewReader(resp.Body)
}

func TestStreamKeepaliveAndShutdown(t *testing.T) {
	s, srv, hub, shutdown, ws := streamServer(t)
	s.streamKeepalive = 30 * time.Millisecond
	_, br := openStream(t, srv.URL, ws)
	var lines []string
	for len(lines) < 6 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, line)
	}
	if lines[0] != ": ping\n" || lines[2] != ": keepalive\n" || lines[4] != ": keepalive\n" {
		t.Fatalf("lines %q", lines)
	}
	close(shutdown)
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, br)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stream ended with %v, want a clean end", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream did not end on shutdown")
	}
	waitCount(t, hub, 0)
}

// A client that stops reading is dropped; others on the same workspace
// keep receiving every event.
func TestStreamSlowClientDropped(t *testing.T) {
	s, srv, hub, _, ws := streamServer(t)
	s.streamWriteLimit = 200 * time.Millisecond
	s.streamKeepalive = 200 * time.Millisecond
	openStream(t, srv.URL, ws) // never read past the headers
	waitCount(t, hub, 1)
	fast := hub.SubscribeWorkspace(ws, 4096)
	defer fast.Close()

	big := `{"blob":"` + strings.Repeat("x", 64<<10) + `"}`
	const n = 2000
	for i := 0; i < n; i++ {
		hub.Deliver(events.Event{Type: "TASK_UPDATED", WorkspaceID: ws, Timestamp: time.Now(), Payload: []byte(big)})
		if i%64 == 0 {
			for len(fast.C) > 0 {
				<-fast.C
			}
		}
	}
	waitCount(t, hub, 1) // only the fast one is left
	if fast.Dropped() {
		t.Fatal("the reading subscriber was dropped")
	}
}

func waitCount(t *testing.T, hub *events.Hub, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for hub.Count() != want {
		if time.Now().After(deadline) {
			t.Fatalf("hub has %d subscribers, want %d", hub.Count(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWebSocketEndsOnShutdown(t *testing.T) {
	_, srv, hub, shutdown, ws := streamServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer admin"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	waitCount(t, hub, 1)
	hub.Deliver(events.Event{Type: "TASK_UPDATED", WorkspaceID: ws, Timestamp: time.Now(), Payload: []byte(`{}`)})
	if _, data, err := conn.Read(ctx); err != nil || !strings.Contains(string(data), `"event":"TASK_UPDATED"`) {
		t.Fatalf("read %s %v", data, err)
	}
	close(shutdown)
	_, _, err = conn.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("close on shutdown: %v", err)
	}
	waitCount(t, hub, 0)
}
