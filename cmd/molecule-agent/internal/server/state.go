package server

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"
	"unicode/utf8"
)

// currentTaskMax caps the current_task summary sent in heartbeats.
const currentTaskMax = 200

// State is the agent's live bookkeeping: tasks in flight, outcomes since the
// last heartbeat, and this month's metered spend. All methods are safe for
// concurrent use.
type State struct {
	mu      sync.Mutex
	now     func() time.Time
	nextID  uint64
	tasks   map[uint64]task
	ok      int
	failed  int
	lastErr string

	// spendMicroUSD accumulates in millionths of a dollar so fractional-cent
	// calls add up exactly; it resets when the UTC month changes.
	spendMonth    string
	spendMicroUSD int64
}

type task struct {
	summary string
	started time.Time
}

// NewState returns empty bookkeeping using now as its clock (nil: time.Now).
func NewState(now func() time.Time) *State {
	if now == nil {
		now = time.Now
	}
	return &State{now: now, tasks: map[uint64]task{}}
}

// Begin records a task as active and returns the function that ends it.
// The summary (first line of the message, shortened) becomes current_task.
// An end caused by context.Canceled (the caller hung up) counts as neither
// success nor failure: a caller's impatience is not the agent's error rate.
func (s *State) Begin(text string) (end func(err error)) {
	s.mu.Lock()
	s.nextID++
	id := s.nextID
	s.tasks[id] = task{summary: summarize(text), started: s.now()}
	s.mu.Unlock()
	var once sync.Once
	return func(err error) {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			delete(s.tasks, id)
			switch {
			case errors.Is(err, context.Canceled):
			case err != nil:
				s.failed++
				s.lastErr = err.Error()
			default:
				s.ok++
			}
		})
	}
}

// Snapshot is the heartbeat's view of State.
type Snapshot struct {
	ActiveTasks  int
	CurrentTask  string // the most recently started active task, "" when idle
	Succeeded    int
	Failed       int
	ErrorRate    float64 // Failed / (Succeeded+Failed) since the last Ack; 0 when no calls
	SampleError  string  // the last failure since the last Ack
	MonthlySpend int64   // cents, this UTC month
}

// Snapshot reads the current state without changing it.
func (s *State) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := Snapshot{ActiveTasks: len(s.tasks), Succeeded: s.ok, Failed: s.failed}
	var newest uint64
	for id, t := range s.tasks {
		if id > newest {
			newest, snap.CurrentTask = id, t.summary
		}
	}
	if total := s.ok + s.failed; total > 0 {
		snap.ErrorRate = float64(s.failed) / float64(total)
	}
	if s.failed > 0 {
		snap.SampleError = s.lastErr
	}
	s.rollMonth()
	snap.MonthlySpend = s.spendMicroUSD / 10_000
	return snap
}

// Ack subtracts the outcomes a delivered heartbeat reported, so the error
// rate describes the calls since the last beat the platform actually saw
// (a lost beat does not lose its failures; an idle period heals to 0).
func (s *State) Ack(snap Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ok = max(0, s.ok-snap.Succeeded)
	s.failed = max(0, s.failed-snap.Failed)
	if s.failed == 0 {
		s.lastErr = ""
	}
}

// AddSpend meters a call's tokens at the given prices (USD per million).
func (s *State) AddSpend(in, out int64, inPerMTok, outPerMTok float64) {
	micro := float64(in)*inPerMTok + float64(out)*outPerMTok
	if micro <= 0 || math.IsNaN(micro) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rollMonth()
	if micro > math.MaxInt64/4 {
		micro = math.MaxInt64 / 4
	}
	s.spendMicroUSD += int64(math.Round(micro))
}

// rollMonth resets spend at a UTC month boundary. Caller holds mu.
func (s *State) rollMonth() {
	m := s.now().UTC().Format("2006-01")
	if m != s.spendMonth {
		s.spendMonth, s.spendMicroUSD = m, 0
	}
}

func summarize(text string) string {
	for i, r := range text {
		if r == '\n' || r == '\r' {
			text = text[:i]
			break
		}
	}
	if utf8.RuneCountInString(text) <= currentTaskMax {
		return text
	}
	n := 0
	for i := range text {
		if n == currentTaskMax-1 {
			return text[:i] + "…"
		}
		n++
	}
	return text
}
