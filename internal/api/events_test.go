package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/apptest"
)

// sseFrame is one Server-Sent Events frame as a client parses it.
type sseFrame struct {
	Comment string
	ID      string
	Data    string
}

// agui is the AG-UI envelope carried in a data line (§10).
type agui struct {
	Type      string          `json:"type"`
	Timestamp int64           `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

type sseStream struct {
	resp   *http.Response
	frames chan sseFrame
	cancel context.CancelFunc
}

// openSSE opens GET /workspaces/:id/events/stream; the frames channel
// closes when the server ends the stream.
func openSSE(t testing.TB, base string, ws uuid.UUID, bearer, lastID string) (*sseStream, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/workspaces/"+ws.String()+"/events/stream", nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		cancel()
		resp.Body.Close()
		return nil, resp
	}
	s := &sseStream{resp: resp, frames: make(chan sseFrame, 4096), cancel: cancel}
	go func() {
		defer close(s.frames)
		br := bufio.NewReader(resp.Body)
		var f sseFrame
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				s.frames <- f
				f = sseFrame{}
			case strings.HasPrefix(line, ":"):
				f.Comment = strings.TrimSpace(line[1:])
			case strings.HasPrefix(line, "id: "):
				f.ID = line[4:]
			case strings.HasPrefix(line, "data: "):
				f.Data = line[6:]
			}
		}
	}()
	t.Cleanup(s.Close)
	return s, resp
}

func (s *sseStream) Close() {
	s.cancel()
	s.resp.Body.Close()
}

// next returns the next data frame, skipping comments.
func (s *sseStream) next(t testing.TB) (sseFrame, agui) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case f, ok := <-s.frames:
			if !ok {
				t.Fatal("stream ended")
			}
			if f.Data == "" {
				continue
			}
			var a agui
			if err := json.Unmarshal([]byte(f.Data), &a); err != nil {
				t.Fatalf("data %q: %v", f.Data, err)
			}
			return f, a
		case <-timeout:
			t.Fatal("no event on the stream")
		}
	}
}

func TestSSEStream(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	a, tokA := in.CreateWorkspaceRow("a", nil)
	b, tokB := in.CreateWorkspaceRow("b", nil)
	ctx := context.Background()
	pub := in.App.Broadcaster

	s, resp := openSSE(t, in.URL, a, tokA, "")
	for k, v := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := resp.Header.Get(k); got != v {
			t.Fatalf("%s = %q, want %q", k, got, v)
		}
	}
	if f := <-s.frames; f.Comment != "ping" || f.Data != "" {
		t.Fatalf("first frame %+v, want the ping comment", f)
	}
	if _, err := pub.Record(ctx, "TASK_UPDATED", b, map[string]string{"who": "b"}); err != nil {
		t.Fatal(err)
	}
	ev1, err := pub.Record(ctx, "TASK_UPDATED", a, map[string]string{"who": "a"})
	if err != nil {
		t.Fatal(err)
	}
	f, env := s.next(t)
	if f.ID != strconv.FormatInt(ev1.ID, 10) || env.Type != "TASK_UPDATED" || env.Timestamp != ev1.Timestamp.UnixMilli() ||
		string(env.Data) != `{"who":"a"}` {
		t.Fatalf("frame %+v %+v, want event %d", f, env, ev1.ID)
	}
	pub.Broadcast(ctx, "WORKSPACE_HEARTBEAT", b, nil)
	pub.Broadcast(ctx, "WORKSPACE_HEARTBEAT", a, map[string]int{"active_tasks": 1})
	f, env = s.next(t)
	if f.ID != "" || env.Type != "WORKSPACE_HEARTBEAT" || string(env.Data) != `{"active_tasks":1}` {
		t.Fatalf("broadcast-only frame %+v %+v", f, env)
	}
	s.Close()

	// Replay after reconnect: the events stored since ev1, in order, then live.
	ev2, _ := pub.Record(ctx, "AGENT_MESSAGE", a, map[string]int{"n": 2})
	_, _ = pub.Record(ctx, "AGENT_MESSAGE", b, map[string]int{"n": 99})
	ev3, _ := pub.Record(ctx, "AGENT_MESSAGE", a, map[string]int{"n": 3})
	s2, _ := openSSE(t, in.URL, a, in.Admin, strconv.FormatInt(ev1.ID, 10))
	for _, want := range []int64{ev2.ID, ev3.ID} {
		f, _ := s2.next(t)
		if f.ID != strconv.FormatInt(want, 10) {
			t.Fatalf("replayed id %s, want %d", f.ID, want)
		}
	}
	ev4, _ := pub.Record(ctx, "AGENT_MESSAGE", a, map[string]int{"n": 4})
	if f, _ := s2.next(t); f.ID != strconv.FormatInt(ev4.ID, 10) {
		t.Fatalf("live after replay: id %s, want %d", f.ID, ev4.ID)
	}

	// Removing the workspace ends its stream after the REMOVED event.
	s3, _ := openSSE(t, in.URL, b, in.Admin, "")
	pub.Broadcast(ctx, "WORKSPACE_REMOVED", b, nil)
	if _, env := s3.next(t); env.Type != "WORKSPACE_REMOVED" {
		t.Fatalf("got %+v", env)
	}
	select {
	case f, ok := <-s3.frames:
		if ok {
			t.Fatalf("frame after removal: %+v", f)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream of a removed workspace stayed open")
	}

	// Bad requests.
	for _, c := range []struct {
		name   string
		ws     uuid.UUID
		bearer string
		lastID string
		status int
	}{
		{"unknown workspace", uuid.New(), in.Admin, "", 404},
		{"other workspace token", a, tokB, "", 403},
		{"no credentials", a, "", "", 401},
		{"garbage credentials", a, "nope", "", 401},
		{"bad Last-Event-ID", a, tokA, "abc", 400},
		{"negative Last-Event-ID", a, tokA, "-4", 400},
	} {
		if s, resp := openSSE(t, in.URL, c.ws, c.bearer, c.lastID); s != nil || resp.StatusCode != c.status {
			t.Fatalf("%s: status %d, want %d", c.name, resp.StatusCode, c.status)
		}
	}
	expectStatus(t, in.Do("GET", "/workspaces/zzz/events/stream", in.Admin, nil), 400, "bad id")
}

func TestStoredEventsList(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	a, tokA := in.CreateWorkspaceRow("a", nil)
	b, _ := in.CreateWorkspaceRow("b", nil)
	ctx := context.Background()
	var ids []int64
	for i := 0; i < 3; i++ {
		ev, err := in.App.Broadcaster.Record(ctx, "TASK_UPDATED", a, map[string]int{"i": i})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
		_, _ = in.App.Broadcaster.Record(ctx, "TASK_UPDATED", b, nil)
	}
	in.App.Broadcaster.Broadcast(ctx, "WORKSPACE_HEARTBEAT", a, nil) // not stored

	type row struct {
		ID          int64           `json:"id"`
		Event       string          `json:"event"`
		WorkspaceID string          `json:"workspace_id"`
		Timestamp   time.Time       `json:"timestamp"`
		Payload     json.RawMessage `json:"payload"`
	}
	var rows []row
	r := in.Do("GET", "/events/"+a.String(), in.Admin, nil)
	expectStatus(t, r, 200, "workspace events")
	r.JSON(t, &rows)
	if len(rows) != 3 || rows[0].ID != ids[2] || rows[2].ID != ids[0] || rows[0].WorkspaceID != a.String() ||
		string(rows[0].Payload) != `{"i":2}` || rows[0].Timestamp.IsZero() || rows[0].Event != "TASK_UPDATED" {
		t.Fatalf("rows %+v", rows)
	}
	r = in.Do("GET", "/events?limit=2", in.Admin, nil)
	expectStatus(t, r, 200, "all events")
	r.JSON(t, &rows)
	if len(rows) != 2 || rows[0].ID <= rows[1].ID {
		t.Fatalf("newest first, limit 2: %+v", rows)
	}
	r = in.Do("GET", "/events?limit=100000", in.Admin, nil)
	r.JSON(t, &rows)
	if len(rows) != 6 {
		t.Fatalf("clamped limit: %d rows", len(rows))
	}
	for _, c := range []struct {
		path, bearer string
		status       int
	}{
		{"/events/" + uuid.NewString(), in.Admin, 404},
		{"/events/not-a-uuid", in.Admin, 400},
		{"/events?limit=-1", in.Admin, 400},
		{"/events?limit=ten", in.Admin, 400},
		{"/events", tokA, 403},
		{"/events/" + b.String(), tokA, 403},
		{"/events", "", 401},
	} {
		expectStatus(t, in.Do("GET", c.path, c.bearer, nil), c.status, c.path)
	}
	// A removed workspace keeps its history.
	if _, err := in.App.Store.DB.Exec(`UPDATE workspaces SET status = 'removed', removed_at = now() WHERE id = $1`, a); err != nil {
		t.Fatal(err)
	}
	r = in.Do("GET", "/events/"+a.String()+"?limit=1", in.Admin, nil)
	r.JSON(t, &rows)
	if len(rows) != 1 || rows[0].ID != ids[2] {
		t.Fatalf("removed workspace history: %+v", rows)
	}
}

func TestRetentionPrunes(t *testing.T) {
	in := apptest.Start(t, apptest.Options{Env: map[string]string{"MOLECULE_EVENT_RETENTION": "1h"}})
	a, _ := in.CreateWorkspaceRow("a", nil)
	ctx := context.Background()
	old, _ := in.App.Broadcaster.Record(ctx, "OLD", a, nil)
	keep, _ := in.App.Broadcaster.Record(ctx, "NEW", a, nil)
	db := in.App.Store.DB
	if _, err := db.Exec(`UPDATE events SET created_at = now() - interval '2 hours' WHERE id = $1`, old.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := in.App.Store.SetMemory(ctx, a, "gone", []byte(`1`), time.Hour, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := in.App.Store.SetMemory(ctx, a, "kept", []byte(`1`), 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE workspace_memory SET expires_at = now() - interval '1 second' WHERE key = 'gone'`); err != nil {
		t.Fatal(err)
	}
	// Two replicas pruning at once split the rows and both succeed.
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() { errs <- in.App.PruneRetention(ctx) }()
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var ids []int64
	rows, _ := db.Query(`SELECT id FROM events ORDER BY id`)
	for rows.Next() {
		var id int64
		_ = rows.Scan(&id)
		ids = append(ids, id)
	}
	rows.Close()
	if len(ids) != 1 || ids[0] != keep.ID {
		t.Fatalf("events left %v, want only %d", ids, keep.ID)
	}
	var keys []string
	rows, _ = db.Query(`SELECT key FROM workspace_memory`)
	for rows.Next() {
		var k string
		_ = rows.Scan(&k)
		keys = append(keys, k)
	}
	rows.Close()
	if len(keys) != 1 || keys[0] != "kept" {
		t.Fatalf("memory left %v", keys)
	}
}
