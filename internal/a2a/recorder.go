package a2a

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/moleculesai/molecule/internal/store"
)

// Sink is where the Recorder writes batches (the store implements it).
// Each call writes its whole batch or returns an error.
type Sink interface {
	AddUsage(ctx context.Context, deltas []store.UsageDelta) error
	InsertActivities(ctx context.Context, rows []store.Activity) error
}

// Recorder takes metering and activity-log records off the request path.
// Usage and Activity only append to an in-memory buffer under a mutex (no
// goroutine is woken per call; a full buffer drops the record and counts
// it); Run writes the buffer in batches every interval, or as soon as a
// batch is full, merging usage per workspace and UTC day so that a burst
// of calls becomes one upsert. Safe for concurrent use; Run must be called
// once.
type Recorder struct {
	sink Sink
	log  *slog.Logger
	// onUsage is called after usage of these workspaces was written, so
	// cached budget state can be dropped at once.
	onUsage func(ids []uuid.UUID)

	interval time.Duration
	batch    int

	prices Prices

	mu          sync.Mutex
	usage       map[usageKey]*store.UsageDelta
	acts        []store.Activity
	calls       []Call
	answerBytes int                // held in calls, bounded by maxHeldAnswers
	kick        chan struct{}      // cap 1: a batch is full
	syncs       chan chan struct{} // Sync requests

	dropped     *prometheus.CounterVec
	flushErrors *prometheus.CounterVec
}

// QueueSize bounds the activity rows, and the usage rows, waiting to be
// written.
const QueueSize = 16384

type usageKey struct {
	ws  uuid.UUID
	day string
}

// NewRecorder builds a Recorder and registers its metrics on reg. Calls
// are metered at prices.
func NewRecorder(sink Sink, log *slog.Logger, reg prometheus.Registerer, prices Prices, onUsage func([]uuid.UUID)) *Recorder {
	r := &Recorder{
		sink: sink, log: log, onUsage: onUsage, prices: prices,
		interval: 200 * time.Millisecond, batch: 512,
		usage: map[usageKey]*store.UsageDelta{},
		kick:  make(chan struct{}, 1), syncs: make(chan chan struct{}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "molecule_a2a_records_dropped_total",
			Help: "Metering and activity records dropped because the write buffer was full or a write failed.",
		}, []string{"kind"}),
		flushErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "molecule_a2a_record_write_errors_total",
			Help: "Failed batch writes of metering or activity records.",
		}, []string{"kind"}),
	}
	if reg != nil {
		reg.MustRegister(r.dropped, r.flushErrors)
	}
	return r
}

// Usage adds metered usage to the buffer; it never blocks on I/O.
func (r *Recorder) Usage(d store.UsageDelta) {
	k := usageKey{d.WorkspaceID, d.Day.UTC().Format(time.DateOnly)}
	r.mu.Lock()
	if _, ok := r.usage[k]; !ok && len(r.usage) >= QueueSize {
		r.mu.Unlock()
		r.dropped.WithLabelValues("usage").Inc()
		return
	}
	mergeUsage(r.usage, d)
	full := len(r.usage) >= r.batch
	r.mu.Unlock()
	if full {
		r.wake()
	}
}

// Activity adds activity-log rows to the buffer; it never blocks on I/O.
func (r *Recorder) Activity(rows ...store.Activity) {
	if len(rows) == 0 {
		return
	}
	r.mu.Lock()
	if len(r.acts)+len(rows) > QueueSize {
		r.mu.Unlock()
		r.dropped.WithLabelValues("activity").Add(float64(len(rows)))
		return
	}
	r.acts = append(r.acts, rows...)
	full := len(r.acts) >= r.batch
	r.mu.Unlock()
	if full {
		r.wake()
	}
}

// Call is one proxied call as it happened. The flusher meters it and
// turns it into activity-log rows, so the request path only appends it.
type Call struct {
	Caller   *uuid.UUID // nil: the user
	Target   uuid.UUID
	Method   string
	Status   int // the agent's status, or the platform's error status
	Duration time.Duration
	At       time.Time
	// Metered: the agent answered 2xx; Answer holds that answer, whose
	// usage is read at flush time.
	Metered bool
	Answer  []byte
	usage   *Usage
}

// Answers up to maxDeferredAnswer bytes are kept for the flusher to
// meter, up to maxHeldAnswers bytes in all; past either, usage is read at
// once and the answer let go.
const (
	maxDeferredAnswer = 64 << 10
	maxHeldAnswers    = 32 << 20
)

// Call records a proxied call; it never blocks on I/O.
func (r *Recorder) Call(c Call) {
	if !c.Metered {
		c.Answer = nil
	}
	n := len(c.Answer)
	r.mu.Lock()
	if len(r.calls) >= QueueSize {
		r.mu.Unlock()
		r.dropped.WithLabelValues("call").Inc()
		return
	}
	hold := n <= maxDeferredAnswer && r.answerBytes+n <= maxHeldAnswers
	if hold {
		r.answerBytes += n
		r.calls = append(r.calls, c)
	}
	full := len(r.calls) >= r.batch
	r.mu.Unlock()
	if !hold {
		u := ExtractUsage(c.Answer)
		c.usage, c.Answer = &u, nil
		r.mu.Lock()
		r.calls = append(r.calls, c)
		r.mu.Unlock()
	}
	if full {
		r.wake()
	}
}

// expand meters calls into usage and turns them into activity rows (on
// the flusher's goroutine). The buffers are already bounded by the calls
// buffer, so nothing here is dropped.
func (r *Recorder) expand(calls []Call, usage map[usageKey]*store.UsageDelta, acts []store.Activity) []store.Activity {
	for i := range calls {
		c := &calls[i]
		if c.Metered {
			u := Usage{}
			if c.usage != nil {
				u = *c.usage
			} else {
				u = ExtractUsage(c.Answer)
			}
			mergeUsage(usage, store.UsageDelta{WorkspaceID: c.Target, Day: c.At, InputTokens: u.InputTokens,
				OutputTokens: u.OutputTokens, Calls: 1, CostMicroUSD: r.prices.CostMicroUSD(u)})
		}
		acts = append(acts, CallActivity(*c)...)
	}
	return acts
}

func mergeUsage(m map[usageKey]*store.UsageDelta, d store.UsageDelta) {
	k := usageKey{d.WorkspaceID, d.Day.UTC().Format(time.DateOnly)}
	if cur, ok := m[k]; ok {
		cur.InputTokens += d.InputTokens
		cur.OutputTokens += d.OutputTokens
		cur.Calls += d.Calls
		cur.CostMicroUSD += d.CostMicroUSD
		return
	}
	m[k] = &d
}

// CallActivity is the activity-log rows of a call: received in the
// target's log and, for a workspace caller, sent in the caller's.
func CallActivity(c Call) []store.Activity {
	status := c.Status
	ms := c.Duration.Milliseconds()
	target := c.Target
	who := "the user"
	if c.Caller != nil {
		who = c.Caller.String()
	}
	method := c.Method
	if method == "" {
		method = "unknown"
	}
	rows := []store.Activity{{
		WorkspaceID: c.Target, ActivityType: store.ActivityA2AReceive,
		Summary:  method + " from " + who + ": " + strconv.Itoa(status),
		CallerID: c.Caller, TargetID: &target, Method: c.Method, StatusCode: &status, DurationMS: &ms, CreatedAt: c.At,
	}}
	if c.Caller != nil && *c.Caller != c.Target {
		rows = append(rows, store.Activity{
			WorkspaceID: *c.Caller, ActivityType: store.ActivityA2ASend,
			Summary:  method + " to " + c.Target.String() + ": " + strconv.Itoa(status),
			CallerID: c.Caller, TargetID: &target, Method: c.Method, StatusCode: &status, DurationMS: &ms, CreatedAt: c.At,
		})
	}
	return rows
}

func (r *Recorder) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Sync writes everything buffered before it and waits for the write (or
// its failure). For tests and shutdown paths; Run must be running.
func (r *Recorder) Sync(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case r.syncs <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run writes batches until ctx ends, then writes what is left with a
// fresh deadline (the server is stopping, not the database).
func (r *Recorder) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			r.flush(fctx)
			cancel()
			return
		case done := <-r.syncs:
			r.flush(ctx)
			close(done)
		case <-r.kick:
			r.flush(ctx)
		case <-t.C:
			r.flush(ctx)
		}
	}
}

// flush writes the buffer. Usage that failed to write goes back into the
// buffer (merged with what arrived meanwhile) so a short outage loses no
// metering; activity rows of a failed write are dropped, counted and
// logged.
func (r *Recorder) flush(ctx context.Context) {
	r.mu.Lock()
	usage, acts, calls := r.usage, r.acts, r.calls
	if len(usage) == 0 && len(acts) == 0 && len(calls) == 0 {
		r.mu.Unlock()
		return
	}
	r.usage, r.acts, r.calls, r.answerBytes = map[usageKey]*store.UsageDelta{}, nil, nil, 0
	r.mu.Unlock()
	acts = r.expand(calls, usage, acts)

	if len(usage) > 0 {
		deltas := make([]store.UsageDelta, 0, len(usage))
		ids := make([]uuid.UUID, 0, len(usage))
		for _, d := range usage {
			deltas = append(deltas, *d)
			ids = append(ids, d.WorkspaceID)
		}
		if err := r.sink.AddUsage(ctx, deltas); err != nil {
			r.flushErrors.WithLabelValues("usage").Inc()
			r.log.Error("write metered usage; will retry", "rows", len(deltas), "err", err)
			for _, d := range deltas {
				r.Usage(d)
			}
		} else if r.onUsage != nil {
			r.onUsage(ids)
		}
	}
	if len(acts) > 0 {
		if err := r.sink.InsertActivities(ctx, acts); err != nil {
			r.flushErrors.WithLabelValues("activity").Inc()
			r.dropped.WithLabelValues("activity").Add(float64(len(acts)))
			r.log.Error("write activity log", "rows", len(acts), "err", err)
		}
	}
}
