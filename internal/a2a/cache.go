package a2a

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Cache is a read-through cache for the proxy's per-call lookups (routes,
// budgets). An answer is served for at most TTL; past half its TTL the
// first reader starts a background refresh and keeps being served the
// current value, so a steady stream of calls for a key never waits on the
// database. Only one load per key runs at a time; concurrent readers of a
// missing key wait for it. Errors are not cached unless Keep says so (a
// "not found" should be, a database outage should not). Invalidate takes
// effect at once; other replicas converge within TTL.
//
// Safe for concurrent use.
type Cache[K comparable, V any] struct {
	TTL  time.Duration
	Load func(ctx context.Context, k K) (V, error)
	// Keep reports whether an error answer may be cached (nil: never).
	Keep func(error) bool
	// Max bounds the number of keys; past it the cache starts over.
	Max int
	now func() time.Time

	mu sync.Mutex
	m  map[K]*cacheEntry[V]
}

type cacheEntry[V any] struct {
	v          V
	err        error
	loaded     time.Time
	ready      chan struct{} // closed once the first load ended
	refreshing bool
}

// loadTimeout bounds a load so that a hung database cannot pin readers.
const loadTimeout = 5 * time.Second

func (c *Cache[K, V]) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

// Get returns the cached answer for k, loading it when absent or expired.
func (c *Cache[K, V]) Get(ctx context.Context, k K) (V, error) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[K]*cacheEntry[V]{}
	}
	e := c.m[k]
	if e != nil {
		select {
		case <-e.ready:
			age := c.clock().Sub(e.loaded)
			if age < c.TTL {
				if age > c.TTL/2 && !e.refreshing {
					e.refreshing = true
					go c.refresh(k, e)
				}
				v, err := e.v, e.err
				c.mu.Unlock()
				return v, err
			}
			e = nil // expired: load again below
		default:
			c.mu.Unlock()
			return c.wait(ctx, e)
		}
	}
	if c.Max > 0 && len(c.m) >= c.Max {
		clear(c.m)
	}
	e = &cacheEntry[V]{ready: make(chan struct{})}
	c.m[k] = e
	c.mu.Unlock()

	// The load is shared by every waiter, so one caller going away must
	// not cancel it for the others.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
	v, err := c.Load(lctx, k)
	cancel()
	c.mu.Lock()
	e.v, e.err, e.loaded = v, err, c.clock()
	if err != nil && (c.Keep == nil || !c.Keep(err)) && c.m[k] == e {
		delete(c.m, k) // the waiters get the error; the next reader retries
	}
	close(e.ready)
	c.mu.Unlock()
	return v, err
}

func (c *Cache[K, V]) wait(ctx context.Context, e *cacheEntry[V]) (V, error) {
	select {
	case <-e.ready:
		c.mu.Lock()
		defer c.mu.Unlock()
		return e.v, e.err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

// refresh reloads k in the background; a failure keeps the current value
// (it expires at its TTL as usual).
func (c *Cache[K, V]) refresh(k K, e *cacheEntry[V]) {
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	v, err := c.Load(ctx, k)
	cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	e.refreshing = false
	if c.m[k] != e {
		return // invalidated meanwhile: the answer may predate the change
	}
	if err != nil && (c.Keep == nil || !c.Keep(err)) {
		return
	}
	// Replace the entry rather than mutate it: readers that took e.v
	// under the lock keep a consistent value.
	ne := &cacheEntry[V]{v: v, err: err, loaded: c.clock(), ready: e.ready}
	c.m[k] = ne
}

// Invalidate drops k so the next Get loads it afresh.
func (c *Cache[K, V]) Invalidate(keys ...K) {
	c.mu.Lock()
	for _, k := range keys {
		delete(c.m, k)
	}
	c.mu.Unlock()
}

// InvalidateAll drops every key (a tree change can alter many chains).
func (c *Cache[K, V]) InvalidateAll() {
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}

// KeepErr returns a Keep function caching the given sentinel errors.
func KeepErr(targets ...error) func(error) bool {
	return func(err error) bool {
		for _, t := range targets {
			if errors.Is(err, t) {
				return true
			}
		}
		return false
	}
}
