package a2a

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/moleculesai/molecule/internal/store"
)

type fakeSink struct {
	mu    sync.Mutex
	usage []store.UsageDelta
	acts  []store.Activity
	calls int
	fail  bool
}

func (f *fakeSink) AddUsage(_ context.Context, d []store.UsageDelta) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.fail {
		return errors.New("db down")
	}
	f.usage = append(f.usage, d...)
	return nil
}

func (f *fakeSink) InsertActivities(_ context.Context, rows []store.Activity) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return errors.New("db down")
	}
	f.acts = append(f.acts, rows...)
	return nil
}

func TestRecorderMergesBatchesAndFlushesOnStop(t *testing.T) {
	sink := &fakeSink{}
	var flushed atomic.Int64
	r := NewRecorder(sink, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), Prices{},
		func(ids []uuid.UUID) { flushed.Add(int64(len(ids))) })
	r.interval = time.Hour // only Sync and stop flush
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()

	ws := uuid.New()
	day := time.Date(2026, 11, 27, 23, 59, 0, 0, time.UTC)
	for range 100 {
		r.Usage(store.UsageDelta{WorkspaceID: ws, Day: day, InputTokens: 10, OutputTokens: 1, Calls: 1, CostMicroUSD: 45})
	}
	r.Usage(store.UsageDelta{WorkspaceID: ws, Day: day.Add(2 * time.Minute), InputTokens: 1, Calls: 1})
	r.Activity(store.Activity{WorkspaceID: ws, ActivityType: "x"}, store.Activity{WorkspaceID: ws, ActivityType: "y"})
	if err := r.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	sink.mu.Lock()
	if len(sink.usage) != 2 || sink.calls != 1 || len(sink.acts) != 2 {
		t.Fatalf("want one upsert of 2 rows (two UTC days) and 2 activities, got %d calls %+v, %d acts", sink.calls, sink.usage, len(sink.acts))
	}
	for _, d := range sink.usage {
		if d.Day.Day() == 27 && (d.InputTokens != 1000 || d.OutputTokens != 100 || d.Calls != 100 || d.CostMicroUSD != 4500) {
			t.Fatalf("merged delta: %+v", d)
		}
	}
	sink.mu.Unlock()
	if flushed.Load() != 2 {
		t.Fatalf("budget invalidation callback: %d", flushed.Load())
	}
	// A failed usage write is retried with the next batch, merged.
	sink.mu.Lock()
	sink.calls = 0
	sink.fail = true
	sink.mu.Unlock()
	r.Usage(store.UsageDelta{WorkspaceID: ws, Day: day, InputTokens: 7, Calls: 1})
	_ = r.Sync(context.Background())
	sink.mu.Lock()
	sink.fail = false
	sink.mu.Unlock()
	r.Usage(store.UsageDelta{WorkspaceID: ws, Day: day, InputTokens: 3, Calls: 1})
	// Stopping writes what is queued.
	cancel()
	<-done
	sink.mu.Lock()
	defer sink.mu.Unlock()
	last := sink.usage[len(sink.usage)-1]
	if len(sink.usage) != 3 || last.InputTokens != 10 || last.Calls != 2 {
		t.Fatalf("retry after failure and flush on stop: %+v", sink.usage)
	}
}

// A full queue drops instead of blocking the caller.
func TestRecorderNeverBlocks(t *testing.T) {
	r := NewRecorder(&fakeSink{}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, Prices{}, nil)
	start := time.Now()
	for range QueueSize + 100 {
		r.Activity(store.Activity{ActivityType: "x"})
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("queueing blocked")
	}
	if got := testCounter(r.dropped.WithLabelValues("activity")); got != 100 {
		t.Fatalf("dropped = %v, want 100", got)
	}
}

// Calls are metered and logged by the flusher: 2xx answers only, usage
// read from held answers and from large ones at once, two rows for a
// workspace caller and one for the user.
func TestRecorderCalls(t *testing.T) {
	sink := &fakeSink{}
	r := NewRecorder(sink, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, Prices{InputPerMTok: 3, OutputPerMTok: 15}, nil)
	r.interval = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	caller, target := uuid.New(), uuid.New()
	at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	small := []byte(`{"result":{"usage":{"input_tokens":100,"output_tokens":10}}}`)
	big := []byte(`{"result":{"usage":{"input_tokens":1,"output_tokens":1},"pad":"` + strings.Repeat("a", maxDeferredAnswer) + `"}}`)
	r.Call(Call{Caller: &caller, Target: target, Method: "message/send", Status: 200, At: at, Metered: true, Answer: small})
	r.Call(Call{Target: target, Method: "message/send", Status: 200, At: at, Metered: true, Answer: big})
	r.Call(Call{Caller: &caller, Target: target, Method: "message/send", Status: 500, At: at, Answer: small})
	r.Call(Call{Caller: &target, Target: target, Status: 403, At: at})
	if err := r.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.usage) != 1 {
		t.Fatalf("usage rows: %+v", sink.usage)
	}
	u := sink.usage[0]
	if u.InputTokens != 101 || u.OutputTokens != 11 || u.Calls != 2 || u.CostMicroUSD != 101*3+11*15 {
		t.Fatalf("metered: %+v", u)
	}
	// 2 + 1 + 2 + 1 (a workspace calling itself logs once).
	if len(sink.acts) != 6 {
		t.Fatalf("activity rows: %d", len(sink.acts))
	}
	first := sink.acts[0]
	if first.WorkspaceID != target || first.ActivityType != store.ActivityA2AReceive || *first.CallerID != caller ||
		first.Summary != "message/send from "+caller.String()+": 200" {
		t.Fatalf("receive row: %+v", first)
	}
	if sent := sink.acts[1]; sent.WorkspaceID != caller || sent.ActivityType != store.ActivityA2ASend {
		t.Fatalf("send row: %+v", sent)
	}
	if user := sink.acts[2]; user.CallerID != nil || user.Summary != "message/send from the user: 200" {
		t.Fatalf("user row: %+v", user)
	}
	if last := sink.acts[5]; last.Summary != "unknown from "+target.String()+": 403" {
		t.Fatalf("denied self row: %+v", last)
	}
}
