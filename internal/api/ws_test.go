package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/apptest"
)

type wsEnvelope struct {
	ID          int64           `json:"id"`
	Event       string          `json:"event"`
	WorkspaceID uuid.UUID       `json:"workspace_id"`
	Timestamp   time.Time       `json:"timestamp"`
	Payload     json.RawMessage `json:"payload"`
}

type wsClient struct {
	conn *websocket.Conn
	msgs chan wsEnvelope
	err  chan error
}

func dialWS(t testing.TB, base, bearer string, header http.Header) (*wsClient, *http.Response, error) {
	t.Helper()
	if header == nil {
		header = http.Header{}
	}
	if bearer != "" {
		header.Set("Authorization", "Bearer "+bearer)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws", &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		return nil, resp, err
	}
	c := &wsClient{conn: conn, msgs: make(chan wsEnvelope, 4096), err: make(chan error, 1)}
	go func() {
		defer close(c.msgs)
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				c.err <- err
				return
			}
			var env wsEnvelope
			if err := json.Unmarshal(data, &env); err != nil {
				c.err <- err
				return
			}
			c.msgs <- env
		}
	}()
	t.Cleanup(func() { conn.CloseNow() })
	return c, resp, nil
}

// until reads messages up to (and including) the first of type marker and
// returns them all.
func (c *wsClient) until(t testing.TB, marker string) []wsEnvelope {
	t.Helper()
	var got []wsEnvelope
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				t.Fatalf("socket closed: %v (after %d messages)", <-c.err, len(got))
			}
			got = append(got, m)
			if m.Event == marker {
				return got
			}
		case <-timeout:
			t.Fatalf("no %s message (got %d others)", marker, len(got))
		}
	}
}

func workspacesOf(msgs []wsEnvelope) map[uuid.UUID]bool {
	out := map[uuid.UUID]bool{}
	for _, m := range msgs {
		out[m.WorkspaceID] = true
	}
	return out
}

func TestWebSocketAccess(t *testing.T) {
	in := apptest.Start(t, apptest.Options{Env: map[string]string{"CORS_ORIGINS": "https://canvas.example.com"}})
	root, _ := in.CreateWorkspaceRow("root", nil)
	a, tokA := in.CreateWorkspaceRow("a", &root)
	sib, _ := in.CreateWorkspaceRow("sibling", &root)
	child, _ := in.CreateWorkspaceRow("child", &a)
	nephew, _ := in.CreateWorkspaceRow("nephew", &sib)
	root2, _ := in.CreateWorkspaceRow("root2", nil)
	ctx := context.Background()
	pub := in.App.Broadcaster

	admin, _, err := dialWS(t, in.URL, in.Admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	agent, _, err := dialWS(t, in.URL, tokA, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Subscriptions are live once the upgrade returns; publish a round.
	all := []uuid.UUID{root, a, sib, child, nephew, root2}
	for _, ws := range all {
		pub.Broadcast(ctx, "TASK_UPDATED", ws, map[string]string{"ws": ws.String()})
	}
	stored, err := pub.Record(ctx, "DONE", a, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := workspacesOf(admin.until(t, "DONE"))
	for _, ws := range all {
		if !got[ws] {
			t.Fatalf("admin missed events of %s", ws)
		}
	}
	msgs := agent.until(t, "DONE")
	if last := msgs[len(msgs)-1]; last.ID != stored.ID || last.WorkspaceID != a || last.Timestamp.IsZero() {
		t.Fatalf("envelope %+v", last)
	}
	got = workspacesOf(msgs)
	for ws, want := range map[uuid.UUID]bool{root: true, a: true, sib: true, child: true, nephew: false, root2: false} {
		if got[ws] != want {
			t.Fatalf("agent a: events of %s delivered=%v, want %v", ws, got[ws], want)
		}
	}

	// A workspace created after connecting: its tree event updates the
	// allowed set (no per-event query), so its later events arrive.
	grandchild, _ := in.CreateWorkspaceRow("grandchild", &child)
	stranger, _ := in.CreateWorkspaceRow("stranger", &nephew)
	pub.Broadcast(ctx, "WORKSPACE_PROVISIONING", grandchild, nil)
	pub.Broadcast(ctx, "WORKSPACE_PROVISIONING", stranger, nil)
	pub.Broadcast(ctx, "TASK_UPDATED", stranger, nil)
	pub.Broadcast(ctx, "TASK_UPDATED", grandchild, nil)
	pub.Broadcast(ctx, "DONE2", a, nil)
	msgs = agent.until(t, "DONE2")
	got = workspacesOf(msgs)
	if !got[grandchild] || got[stranger] || len(msgs) != 3 {
		t.Fatalf("after tree change: %+v", msgs)
	}

	// Removing the workspace ends its socket.
	if _, err := in.App.Store.DB.Exec(`UPDATE workspaces SET status = 'removed' WHERE id = $1`, a); err != nil {
		t.Fatal(err)
	}
	pub.Broadcast(ctx, "WORKSPACE_REMOVED", a, nil)
	select {
	case <-agent.msgs:
	case <-time.After(10 * time.Second):
		t.Fatal("socket of a removed workspace stayed open")
	}
	if err := <-agent.err; websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("close: %v", err)
	}
}

func TestWebSocketHandshake(t *testing.T) {
	in := apptest.Start(t, apptest.Options{Env: map[string]string{"CORS_ORIGINS": "https://canvas.example.com"}})
	_, tok := in.CreateWorkspaceRow("a", nil)
	cases := []struct {
		name   string
		bearer string
		origin string
		status int
	}{
		{"no credentials", "", "", 401},
		{"garbage", "nope", "", 401},
		{"foreign origin", in.Admin, "https://evil.example.com", 403},
		{"look-alike origin", in.Admin, "https://canvas.example.com.evil.com", 403},
		{"allowed origin", in.Admin, "https://canvas.example.com", 101},
		{"own origin", tok, in.URL, 101},
		{"no origin (agent)", tok, "", 101},
	}
	for _, c := range cases {
		h := http.Header{}
		if c.origin != "" {
			h.Set("Origin", c.origin)
		}
		cl, resp, err := dialWS(t, in.URL, c.bearer, h)
		if c.status == 101 {
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			cl.conn.Close(websocket.StatusNormalClosure, "")
			continue
		}
		if err == nil || resp == nil || resp.StatusCode != c.status {
			t.Fatalf("%s: err %v resp %v, want %d", c.name, err, resp, c.status)
		}
	}
	expectStatus(t, in.Do("GET", "/ws", in.Admin, nil), 400, "not an upgrade")
	// A workspace created after the shared tree snapshot was taken can
	// connect at once.
	_, late := in.CreateWorkspaceRow("late", nil)
	if _, _, err := dialWS(t, in.URL, late, nil); err != nil {
		t.Fatalf("new workspace: %v", err)
	}

	// Keepalive: the server answers pings while streaming.
	cl, _, err := dialWS(t, in.URL, tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Ping needs a concurrent reader on our side: dialWS runs one.
	if err := cl.conn.Ping(pctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("ping: %v", err)
	}
}
