package a2a

import (
	"context"
	"log/slog"
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

// Recorder takes metering and activity-log records off the request path:
// Usage and Activity never block (a full queue drops the record and counts
// it), and Run writes what arrived in batches, merging usage per workspace
// and day so that a burst of calls becomes one upsert. Safe for concurrent
// use; Run must be called once.
type Recorder struct {
	sink Sink
	log  *slog.Logger
	ch   chan record
	// OnUsage is called after usage of these workspaces was written, so
	// cached budget state can be dropped at once.
	onUsage func(ids []uuid.UUID)

	interval time.Duration
	batch    int

	dropped     *prometheus.CounterVec
	flushErrors *prometheus.CounterVec
}

type record struct {
	usage    *store.UsageDelta
	activity []store.Activity
	sync     chan struct{} // Sync: closed once everything before it is written
}

// QueueSize bounds the records waiting to be written.
const QueueSize = 16384

// maxRetainedUsage bounds usage kept for a retry after a failed write.
const maxRetainedUsage = 10_000

// NewRecorder builds a Recorder and registers its metrics on reg.
func NewRecorder(sink Sink, log *slog.Logger, reg prometheus.Registerer, onUsage func([]uuid.UUID)) *Recorder {
	r := &Recorder{
		sink: sink, log: log, ch: make(chan record, QueueSize), onUsage: onUsage,
		interval: 200 * time.Millisecond, batch: 512,
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "molecule_a2a_records_dropped_total",
			Help: "Metering and activity records dropped because the write queue was full.",
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

// Usage queues metered usage; it never blocks.
func (r *Recorder) Usage(d store.UsageDelta) {
	select {
	case r.ch <- record{usage: &d}:
	default:
		r.dropped.WithLabelValues("usage").Inc()
	}
}

// Activity queues activity-log rows; it never blocks.
func (r *Recorder) Activity(rows ...store.Activity) {
	if len(rows) == 0 {
		return
	}
	select {
	case r.ch <- record{activity: rows}:
	default:
		r.dropped.WithLabelValues("activity").Add(float64(len(rows)))
	}
}

// Sync waits until every record queued before it has been written (or
// its write failed). For tests and shutdown paths.
func (r *Recorder) Sync(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case r.ch <- record{sync: done}:
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

type usageKey struct {
	ws  uuid.UUID
	day string
}

// Run writes batches until ctx ends, then writes what is left.
func (r *Recorder) Run(ctx context.Context) {
	usage := map[usageKey]*store.UsageDelta{}
	var acts []store.Activity
	var syncs []chan struct{}
	t := time.NewTicker(r.interval)
	defer t.Stop()

	add := func(rec record) {
		switch {
		case rec.usage != nil:
			k := usageKey{rec.usage.WorkspaceID, rec.usage.Day.UTC().Format(time.DateOnly)}
			if cur, ok := usage[k]; ok {
				cur.InputTokens += rec.usage.InputTokens
				cur.OutputTokens += rec.usage.OutputTokens
				cur.Calls += rec.usage.Calls
				cur.CostMicroUSD += rec.usage.CostMicroUSD
			} else {
				usage[k] = rec.usage
			}
		case rec.sync != nil:
			syncs = append(syncs, rec.sync)
		default:
			acts = append(acts, rec.activity...)
		}
	}
	flush := func(ctx context.Context) {
		usage, acts = r.write(ctx, usage, acts)
		for _, s := range syncs {
			close(s)
		}
		syncs = nil
	}
	for {
		select {
		case <-ctx.Done():
			// Drain what is queued and write it with a fresh deadline:
			// the server is stopping, not the database.
			for {
				select {
				case rec := <-r.ch:
					add(rec)
					continue
				default:
				}
				break
			}
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			flush(fctx)
			cancel()
			return
		case rec := <-r.ch:
			add(rec)
			if rec.sync != nil || len(acts) >= r.batch || len(usage) >= r.batch {
				flush(ctx)
			}
		case <-t.C:
			if len(acts) > 0 || len(usage) > 0 {
				flush(ctx)
			}
		}
	}
}

// write writes one batch and returns what should be retried: usage is
// kept (bounded) so a short outage loses no metering; activity rows are
// dropped after a failure, counted and logged.
func (r *Recorder) write(ctx context.Context, usage map[usageKey]*store.UsageDelta, acts []store.Activity) (map[usageKey]*store.UsageDelta, []store.Activity) {
	if len(usage) > 0 {
		deltas := make([]store.UsageDelta, 0, len(usage))
		ids := make([]uuid.UUID, 0, len(usage))
		for _, d := range usage {
			deltas = append(deltas, *d)
			ids = append(ids, d.WorkspaceID)
		}
		if err := r.sink.AddUsage(ctx, deltas); err != nil {
			r.flushErrors.WithLabelValues("usage").Inc()
			r.log.Error("write metered usage", "rows", len(deltas), "err", err)
			if len(usage) > maxRetainedUsage {
				r.dropped.WithLabelValues("usage").Add(float64(len(usage)))
				usage = map[usageKey]*store.UsageDelta{}
			}
		} else {
			usage = map[usageKey]*store.UsageDelta{}
			if r.onUsage != nil {
				r.onUsage(ids)
			}
		}
	}
	if len(acts) > 0 {
		if err := r.sink.InsertActivities(ctx, acts); err != nil {
			r.flushErrors.WithLabelValues("activity").Inc()
			r.dropped.WithLabelValues("activity").Add(float64(len(acts)))
			r.log.Error("write activity log", "rows", len(acts), "err", err)
		}
		acts = nil
	}
	return usage, acts
}
