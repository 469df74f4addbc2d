// Package runloop runs the server's periodic background loops and remembers
// each one's last tick for GET /admin/liveness.
package runloop

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// Loop is one periodic job. Fn must be safe to run on several replicas at
// once (claim rows atomically); an error is logged and the loop goes on.
type Loop struct {
	Name     string
	Interval time.Duration
	Fn       func(ctx context.Context) error
}

// Status is a loop's last tick as reported by /admin/liveness.
type Status struct {
	Name      string    `json:"name"`
	Interval  string    `json:"interval"`
	LastTick  time.Time `json:"last_tick"`
	LastError string    `json:"last_error,omitempty"`
	Ticks     int64     `json:"ticks"`
}

// Runner runs loops until its context ends.
type Runner struct {
	log   *slog.Logger
	mu    sync.Mutex
	state map[string]*Status
	wg    sync.WaitGroup
}

// NewRunner makes a runner.
func NewRunner(log *slog.Logger) *Runner { return &Runner{log: log, state: map[string]*Status{}} }

// Start runs l in a goroutine until ctx ends.
func (r *Runner) Start(ctx context.Context, l Loop) {
	r.mu.Lock()
	r.state[l.Name] = &Status{Name: l.Name, Interval: l.Interval.String()}
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(l.Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				r.tick(ctx, l)
			}
		}
	}()
}

func (r *Runner) tick(ctx context.Context, l Loop) {
	err := l.Fn(ctx)
	if err != nil && ctx.Err() == nil {
		r.log.Error("background loop failed", "loop", l.Name, "err", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.state[l.Name]
	s.LastTick = time.Now().UTC()
	s.Ticks++
	s.LastError = ""
	if err != nil {
		s.LastError = "failed; see server log" // the detail may hold driver text
	}
}

// Wait blocks until every loop has returned (after ctx ended).
func (r *Runner) Wait() { r.wg.Wait() }

// Statuses lists loops by name.
func (r *Runner) Statuses() []Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Status, 0, len(r.state))
	for _, s := range r.state {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
