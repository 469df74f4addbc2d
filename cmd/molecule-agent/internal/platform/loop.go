package platform

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"
)

// BeatFunc produces the next heartbeat's content and an ack the loop calls
// once the platform accepted it (so per-beat counters are reset only when
// the platform has them). Called from the loop's goroutine only.
type BeatFunc func() (hb Heartbeat, ack func())

// Loop registers the agent and then heartbeats until ctx ends.
type Loop struct {
	Client   *Client
	AgentURL string
	Card     any
	Beat     BeatFunc
	Logger   *slog.Logger

	Interval   time.Duration // heartbeat period
	MinBackoff time.Duration // first retry delay for registration (default 1s)
	MaxBackoff time.Duration // cap on retry delay (default 30s)

	// Clock hooks; nil means the time package. Tests inject them to drive
	// ticks and observe backoff delays without sleeping.
	NewTicker func(time.Duration) (<-chan time.Time, func())
	After     func(time.Duration) <-chan time.Time

	// OnRegistered, when set, is called after each successful registration
	// (tests use it to synchronise without sleeping).
	OnRegistered func()
}

// Run blocks until ctx is done. It never gives up on registration: a
// provisioned agent has nothing better to do than keep trying.
//
// Heartbeat answers: 401 means the token was rotated or revoked (the token
// file is re-read on every request) and 404 means the platform no longer
// knows the workspace (e.g. its database was reset); both send the loop back
// to registration with backoff. Any other failure is retried on the next
// tick, since the platform's liveness sweep handles a long outage.
func (l *Loop) Run(ctx context.Context) {
	log := l.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for ctx.Err() == nil {
		if !l.register(ctx, log) {
			return
		}
		l.heartbeat(ctx, log)
	}
}

func (l *Loop) register(ctx context.Context, log *slog.Logger) bool {
	minB, maxB := l.MinBackoff, l.MaxBackoff
	if minB <= 0 {
		minB = time.Second
	}
	if maxB < minB {
		maxB = max(30*time.Second, minB)
	}
	delay := minB
	for attempt := 1; ; attempt++ {
		err := l.Client.Register(ctx, l.AgentURL, l.Card)
		if err == nil {
			log.Info("registered with platform", "url", l.AgentURL, "attempts", attempt)
			if l.OnRegistered != nil {
				l.OnRegistered()
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		log.Warn("registration failed; retrying", "error", err, "attempt", attempt, "retry_in", delay)
		// Jitter (±20%) keeps a fleet restarted together from retrying in step.
		wait := delay + time.Duration((rand.Float64()*0.4-0.2)*float64(delay))
		select {
		case <-ctx.Done():
			return false
		case <-l.after(wait):
		}
		delay = min(delay*2, maxB)
	}
}

// heartbeat returns when ctx ends or the platform asks for re-registration.
func (l *Loop) heartbeat(ctx context.Context, log *slog.Logger) {
	interval := l.Interval
	if interval <= 0 {
		interval = 30 * time.Second
	}
	ticks, stop := l.ticker(interval)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
		hb, ack := l.Beat()
		err := l.Client.SendHeartbeat(ctx, hb)
		switch {
		case err == nil:
			if ack != nil {
				ack()
			}
		case ctx.Err() != nil:
			return
		case IsStatus(err, http.StatusUnauthorized), IsStatus(err, http.StatusNotFound):
			log.Warn("heartbeat rejected; registering again", "error", err)
			return
		default:
			log.Warn("heartbeat failed", "error", err)
		}
	}
}

func (l *Loop) ticker(d time.Duration) (<-chan time.Time, func()) {
	if l.NewTicker != nil {
		return l.NewTicker(d)
	}
	t := time.NewTicker(d)
	return t.C, t.Stop
}

func (l *Loop) after(d time.Duration) <-chan time.Time {
	if l.After != nil {
		return l.After(d)
	}
	// time.After no longer leaks an unfired timer (Go ≥ 1.23).
	return time.After(d)
}
