package events

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisTransport carries events between replicas over Redis pub/sub.
type RedisTransport struct {
	rdb       *redis.Client
	channel   string
	log       *slog.Logger
	downUntil atomic.Int64 // unix nanos; publish fails fast before it
}

var _ Transport = (*RedisTransport)(nil)

// NewRedisTransport publishes and subscribes on channel.
func NewRedisTransport(rdb *redis.Client, channel string, log *slog.Logger) *RedisTransport {
	return &RedisTransport{rdb: rdb, channel: channel, log: log}
}

// ErrNoReceivers means Redis took the message but no replica (not even
// this one) was subscribed: our subscription is still starting or
// re-subscribing after Redis came back, so the caller delivers locally.
var ErrNoReceivers = errors.New("no replica subscribed to the event channel")

// ErrRedisDown is returned without trying while a recent publish failure
// is fresh.
var ErrRedisDown = errors.New("redis recently unreachable")

// Publish sends data to every replica (this one included) with a short
// deadline, so a hung Redis cannot stall the caller.
//
// After a failure Publish fails fast for a second (ErrRedisDown) instead
// of making every caller wait out the deadline against a hung Redis: the
// broadcaster then delivers locally at once.
func (t *RedisTransport) Publish(ctx context.Context, data []byte) error {
	if time.Now().UnixNano() < t.downUntil.Load() {
		return ErrRedisDown
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 500*time.Millisecond)
	defer cancel()
	n, err := t.rdb.Publish(ctx, t.channel, data).Result()
	if err != nil {
		t.downUntil.Store(time.Now().Add(time.Second).UnixNano())
		return err
	}
	if n == 0 {
		return ErrNoReceivers
	}
	return nil
}

// Run subscribes and delivers until ctx ends; after a lost connection it
// re-subscribes with backoff.
func (t *RedisTransport) Run(ctx context.Context, deliver func([]byte)) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		sub := t.rdb.Subscribe(ctx, t.channel)
		if _, err := sub.Receive(ctx); err != nil {
			sub.Close()
			if ctx.Err() != nil {
				return
			}
			t.log.Warn("redis subscribe failed; retrying", "err", err, "backoff", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		// go-redis reconnects a dropped subscription by itself; the channel
		// closes only when sub is closed, which ctx ending does here.
		done := make(chan struct{})
		go func() {
			select {
			case <-ctx.Done():
				sub.Close()
			case <-done:
			}
		}()
		for msg := range sub.Channel(redis.WithChannelHealthCheckInterval(10 * time.Second)) {
			deliver([]byte(msg.Payload))
		}
		close(done)
		sub.Close()
	}
}
