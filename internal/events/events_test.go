package events

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/moleculesai/molecule/internal/testutil"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type fakeRecorder struct {
	mu   sync.Mutex
	next int64
	err  error
}

func (f *fakeRecorder) InsertEvent(_ context.Context, _ string, _ uuid.UUID, payload []byte) (int64, time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return 0, time.Time{}, f.err
	}
	if !json.Valid(payload) {
		return 0, time.Time{}, errors.New("invalid json")
	}
	f.next++
	return f.next, time.UnixMilli(1_700_000_000_123), nil
}

func recv(t *testing.T, s *Subscription) Event {
	t.Helper()
	select {
	case ev, ok := <-s.C:
		if !ok {
			t.Fatal("subscription closed")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	return Event{}
}

func none(t *testing.T, s *Subscription) {
	t.Helper()
	select {
	case ev := <-s.C:
		t.Fatalf("unexpected event %+v", ev)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestHubIsolationAndFilters(t *testing.T) {
	h := NewHub()
	a, b := uuid.New(), uuid.New()
	subA := h.SubscribeWorkspace(a, 8)
	subB := h.SubscribeWorkspace(b, 8)
	all := h.SubscribeAll(nil, 8)
	onlyB := h.SubscribeAll(func(ev Event) bool { return ev.WorkspaceID == b }, 8)
	h.Deliver(Event{Type: "X", WorkspaceID: a})
	if ev := recv(t, subA); ev.WorkspaceID != a {
		t.Fatalf("got %v", ev.WorkspaceID)
	}
	recv(t, all)
	none(t, subB)
	none(t, onlyB)
	h.Deliver(Event{Type: "Y", WorkspaceID: b})
	recv(t, subB)
	recv(t, onlyB)
	recv(t, all)
	none(t, subA)
	// Subscribing to uuid.Nil is not a subscription to everything.
	nilSub := h.SubscribeWorkspace(uuid.Nil, 8)
	h.Deliver(Event{Type: "Z", WorkspaceID: a})
	none(t, nilSub)
	recv(t, subA)
	recv(t, all)
	h.Deliver(Event{Type: "GLOBAL"})
	recv(t, nilSub)
	recv(t, all)
	nilSub.Close()
	if h.Count() != 4 {
		t.Fatalf("count %d", h.Count())
	}
	subA.Close()
	subA.Close() // idempotent
	if _, ok := <-subA.C; ok {
		t.Fatal("closed subscription still open")
	}
	if subA.Dropped() {
		t.Fatal("a closed subscription is not a dropped one")
	}
	if h.Count() != 3 {
		t.Fatalf("count after close %d", h.Count())
	}
}

func TestHubDropsSlowSubscriber(t *testing.T) {
	h := NewHub()
	ws := uuid.New()
	slow := h.SubscribeWorkspace(ws, 2)
	fast := h.SubscribeWorkspace(ws, 16)
	for i := 0; i < 5; i++ {
		h.Deliver(Event{Type: "E", WorkspaceID: ws})
	}
	// The slow one keeps what it had buffered, then sees the close.
	n := 0
	for range slow.C {
		n++
	}
	if n != 2 || !slow.Dropped() {
		t.Fatalf("slow got %d events, dropped=%v", n, slow.Dropped())
	}
	for i := 0; i < 5; i++ {
		recv(t, fast)
	}
	if fast.Dropped() || h.Count() != 1 {
		t.Fatalf("fast dropped=%v count=%d", fast.Dropped(), h.Count())
	}
}

func TestHubConcurrentSubscribeDeliverClose(t *testing.T) {
	h := NewHub()
	ws := uuid.New()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				h.Deliver(Event{Type: "E", WorkspaceID: ws})
			}
		}
	}()
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				s := h.SubscribeWorkspace(ws, 1)
				if j%2 == 0 {
					s2 := h.SubscribeAll(nil, 1)
					s2.Close()
				}
				s.Close()
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	if h.Count() != 0 {
		t.Fatalf("leaked %d subscriptions", h.Count())
	}
}

func TestFrames(t *testing.T) {
	ws := uuid.New()
	at := time.UnixMilli(1_700_000_000_123).UTC()
	ev := Event{ID: 42, Type: "TASK_UPDATED", WorkspaceID: ws, Timestamp: at, Payload: json.RawMessage("{\n \"a\": 1\n}")}
	got := string(ev.SSE())
	want := "id: 42\ndata: {\"type\":\"TASK_UPDATED\",\"timestamp\":1700000000123,\"data\":{\"a\":1}}\n\n"
	if got != want {
		t.Fatalf("SSE = %q, want %q", got, want)
	}
	ev.ID = 0
	if s := string(ev.SSE()); strings.HasPrefix(s, "id:") {
		t.Fatalf("broadcast-only event got an id line: %q", s)
	}
	var env map[string]any
	if err := json.Unmarshal(ev.JSON(), &env); err != nil {
		t.Fatal(err)
	}
	if env["event"] != "TASK_UPDATED" || env["workspace_id"] != ws.String() || env["timestamp"] != "2023-11-14T22:13:20.123Z" {
		t.Fatalf("envelope %v", env)
	}
	if _, ok := env["id"]; ok {
		t.Fatal("id present on an unstored event")
	}
	// Cached encodings are shared by the copies the hub hands out.
	h := NewHub()
	s1, s2 := h.SubscribeWorkspace(ws, 1), h.SubscribeWorkspace(ws, 1)
	h.Deliver(Event{ID: 1, Type: "E", WorkspaceID: ws, Timestamp: at, Payload: json.RawMessage(`{}`)})
	e1, e2 := recv(t, s1), recv(t, s2)
	if &e1.SSE()[0] != &e2.SSE()[0] {
		t.Fatal("each subscriber re-encoded the event")
	}
}

func TestEncodePayload(t *testing.T) {
	cases := []struct {
		in   any
		want string
	}{
		{nil, `{}`},
		{[]byte(nil), `{}`},
		{json.RawMessage(`{"a":1}`), `{"a":1}`},
		{[]byte("not json"), `"not json"`},
		{map[string]int{"n": 2}, `{"n":2}`},
		{func() {}, `{}`}, // unmarshalable
	}
	for _, c := range cases {
		if got := string(encodePayload(c.in)); got != c.want {
			t.Errorf("encodePayload(%T) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestBroadcasterLocal(t *testing.T) {
	h := NewHub()
	rec := &fakeRecorder{}
	b := NewBroadcaster(rec, nil, h, quiet)
	ws := uuid.New()
	sub := h.SubscribeWorkspace(ws, 8)
	ev, err := b.Record(context.Background(), "WORKSPACE_ONLINE", ws, map[string]string{"k": "v"})
	if err != nil || ev.ID != 1 {
		t.Fatalf("record: %+v %v", ev, err)
	}
	got := recv(t, sub)
	if got.ID != 1 || got.Type != "WORKSPACE_ONLINE" || string(got.Payload) != `{"k":"v"}` {
		t.Fatalf("got %+v", got)
	}
	b.Broadcast(context.Background(), "WORKSPACE_HEARTBEAT", ws, nil)
	if got := recv(t, sub); got.ID != 0 || got.Type != "WORKSPACE_HEARTBEAT" || got.Timestamp.IsZero() {
		t.Fatalf("broadcast got %+v", got)
	}
	// A storage failure is returned and nothing is published.
	rec.err = errors.New("db down")
	if _, err := b.Record(context.Background(), "X", ws, nil); err == nil {
		t.Fatal("want error")
	}
	none(t, sub)
	// Without a transport, Broadcast never blocks even with nobody reading
	// and nothing running Run.
	done := make(chan struct{})
	go func() {
		for i := 0; i < 10_000; i++ {
			b.Broadcast(context.Background(), "E", uuid.New(), nil)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("broadcast blocked")
	}
}

type failingTransport struct{}

func (failingTransport) Publish(context.Context, []byte) error { return errors.New("down") }
func (failingTransport) Run(ctx context.Context, _ func([]byte)) {
	<-ctx.Done()
}

func TestBroadcasterTransportDownStillDeliversLocally(t *testing.T) {
	h := NewHub()
	b := NewBroadcaster(&fakeRecorder{}, failingTransport{}, h, quiet)
	ws := uuid.New()
	sub := h.SubscribeWorkspace(ws, 8)
	b.Broadcast(context.Background(), "E", ws, nil)
	recv(t, sub)
}

func TestRedisTransportBetweenReplicas(t *testing.T) {
	opts, err := redis.ParseURL(testutil.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	channel := testutil.UniquePrefix() + ":events"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var replicas []*Broadcaster
	var subs []*Subscription
	ws := uuid.New()
	for i := 0; i < 2; i++ {
		rdb := redis.NewClient(opts)
		defer rdb.Close()
		h := NewHub()
		b := NewBroadcaster(&fakeRecorder{}, NewRedisTransport(rdb, channel, quiet), h, quiet)
		go b.Run(ctx)
		replicas = append(replicas, b)
		subs = append(subs, h.SubscribeWorkspace(ws, 8))
	}
	// Subscriptions start asynchronously; publish until both replicas hear.
	deadline := time.Now().Add(10 * time.Second)
	for {
		replicas[0].Broadcast(ctx, "PING", ws, nil)
		time.Sleep(50 * time.Millisecond)
		if len(subs[0].C) > 0 && len(subs[1].C) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("replicas never connected through Redis")
		}
	}
	for _, s := range subs {
		for len(s.C) > 0 {
			<-s.C
		}
	}
	ev, err := replicas[1].Record(ctx, "TASK_UPDATED", ws, map[string]int{"n": 7})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range subs {
		got := recv(t, s)
		if got.ID != ev.ID || got.Type != "TASK_UPDATED" || string(got.Payload) != `{"n":7}` || !got.Timestamp.Equal(ev.Timestamp) {
			t.Fatalf("replica %d got %+v, want %+v", i, got, ev)
		}
	}
}

func BenchmarkHubFanout1000(b *testing.B) {
	h := NewHub()
	ws := uuid.New()
	const n = 1000
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		s := h.SubscribeWorkspace(ws, 16)
		go func() {
			for ev := range s.C {
				_ = ev.SSE()
				wg.Done()
			}
		}()
	}
	ev := Event{Type: "TASK_UPDATED", WorkspaceID: ws, Timestamp: time.Now(), Payload: json.RawMessage(`{"task":"x"}`)}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		wg.Add(n)
		ev.enc = nil
		h.Deliver(ev)
		wg.Wait()
	}
}

// After a failed publish the transport fails fast for a while, so callers
// do not each wait out the deadline against a dead Redis; the broadcaster
// still delivers locally.
func TestRedisTransportFailsFast(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	tr := NewRedisTransport(rdb, "x", quiet)
	if err := tr.Publish(context.Background(), []byte(`{}`)); err == nil || errors.Is(err, ErrRedisDown) {
		t.Fatalf("first publish: %v", err)
	}
	start := time.Now()
	if err := tr.Publish(context.Background(), []byte(`{}`)); !errors.Is(err, ErrRedisDown) {
		t.Fatalf("second publish: %v", err)
	}
	if time.Since(start) > 50*time.Millisecond {
		t.Fatal("fail-fast publish waited")
	}
	h := NewHub()
	b := NewBroadcaster(&fakeRecorder{}, tr, h, quiet)
	ws := uuid.New()
	sub := h.SubscribeWorkspace(ws, 4)
	b.Broadcast(context.Background(), "E", ws, nil)
	recv(t, sub)
}
