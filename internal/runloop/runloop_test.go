package runloop

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// Loops tick until their context ends; each one's last tick is reported,
// and a failure shows as an opaque note (the detail may hold driver text,
// so it stays in the log).
func TestRunnerReportsTicksAndStops(t *testing.T) {
	r := NewRunner(slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	ok := make(chan struct{}, 100)
	r.Start(ctx, Loop{Name: "b-ok", Interval: time.Millisecond, Fn: func(context.Context) error {
		select {
		case ok <- struct{}{}:
		default:
		}
		return nil
	}})
	r.Start(ctx, Loop{Name: "a-fails", Interval: time.Millisecond, Fn: func(context.Context) error {
		return errors.New(`pq: relation "secret_table" does not exist`)
	}})
	for range 3 {
		select {
		case <-ok:
		case <-time.After(5 * time.Second):
			t.Fatal("loop did not tick")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := r.Statuses()
		if len(st) == 2 && st[0].Ticks > 0 && st[1].Ticks >= 3 {
			if st[0].Name != "a-fails" || st[1].Name != "b-ok" {
				t.Fatalf("not sorted by name: %+v", st)
			}
			if st[0].LastError == "" || strings.Contains(st[0].LastError, "pq:") {
				t.Fatalf("failure note %q: want a note without the error text", st[0].LastError)
			}
			if st[1].LastError != "" || st[1].LastTick.IsZero() || st[1].Interval != "1ms" {
				t.Fatalf("healthy loop: %+v", st[1])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("statuses: %+v", st)
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	done := make(chan struct{})
	go func() { r.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("loops did not stop when their context ended")
	}
}
