package api

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/events"
	"github.com/moleculesai/molecule/internal/store"
)

// streamServer builds a bare server (no app) whose stream timings and
// shutdown channel the test controls.
func streamServer(t *testing.T) (*Server, string, *events.Hub, chan struct{}, uuid.UUID) {
	t.Helper()
	shutdown := make(chan struct{})
	h := NewTestServer(t, TestServerOptions{Env: map[string]string{"ADMIN_TOKEN": "admin"}, Shutdown: shutdown})
	id, _ := h.Workspace(&store.Workspace{Name: "a"})
	return h.Server, h.URL, h.Hub, shutdown, id
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
	s, url, hub, shutdown, ws := streamServer(t)
	s.streamKeepalive = 30 * time.Millisecond
	_, br := openStream(t, url, ws)
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
	s, url, hub, _, ws := streamServer(t)
	s.streamWriteLimit = 200 * time.Millisecond
	s.streamKeepalive = 200 * time.Millisecond
	openStream(t, url, ws) // never read past the headers
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
	_, url, hub, shutdown, ws := streamServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/ws",
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
