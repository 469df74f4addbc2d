package a2a

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeClock) now() time.Time      { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeClock) add(d time.Duration) { f.mu.Lock(); f.t = f.t.Add(d); f.mu.Unlock() }

var errMissing = errors.New("missing")

func TestCacheTTLRefreshAndInvalidate(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	var loads atomic.Int64
	var value atomic.Int64
	value.Store(1)
	c := &Cache[string, int64]{TTL: time.Second, now: clk.now, Load: func(ctx context.Context, k string) (int64, error) {
		loads.Add(1)
		if k == "gone" {
			return 0, errMissing
		}
		if k == "down" {
			return 0, errors.New("database down")
		}
		return value.Load(), nil
	}, Keep: KeepErr(errMissing)}
	ctx := context.Background()

	if v, _ := c.Get(ctx, "a"); v != 1 || loads.Load() != 1 {
		t.Fatalf("first get: v=%d loads=%d", v, loads.Load())
	}
	value.Store(2)
	clk.add(300 * time.Millisecond)
	if v, _ := c.Get(ctx, "a"); v != 1 || loads.Load() != 1 {
		t.Fatalf("fresh hit must not load: v=%d loads=%d", v, loads.Load())
	}
	// Past half the TTL: served the current value, refreshed behind.
	clk.add(400 * time.Millisecond)
	if v, _ := c.Get(ctx, "a"); v != 1 {
		t.Fatalf("refresh-ahead must serve the cached value, got %d", v)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		if v, _ := c.Get(ctx, "a"); v == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("background refresh never landed")
		}
		time.Sleep(time.Millisecond)
	}
	// Expired entries load in the foreground.
	value.Store(3)
	clk.add(2 * time.Second)
	if v, _ := c.Get(ctx, "a"); v != 3 {
		t.Fatalf("expired: got %d", v)
	}
	// Invalidate applies at once.
	value.Store(4)
	c.Invalidate("a")
	if v, _ := c.Get(ctx, "a"); v != 4 {
		t.Fatalf("after invalidate: %d", v)
	}
	value.Store(5)
	c.InvalidateAll()
	if v, _ := c.Get(ctx, "a"); v != 5 {
		t.Fatalf("after invalidate all: %d", v)
	}
	// Kept errors are cached; others are retried on the next Get.
	before := loads.Load()
	for range 3 {
		if _, err := c.Get(ctx, "gone"); !errors.Is(err, errMissing) {
			t.Fatalf("gone: %v", err)
		}
	}
	if loads.Load()-before != 1 {
		t.Fatalf("not-found should be cached: %d loads", loads.Load()-before)
	}
	before = loads.Load()
	for range 3 {
		if _, err := c.Get(ctx, "down"); err == nil {
			t.Fatal("down: want an error")
		}
	}
	if loads.Load()-before != 3 {
		t.Fatalf("a transient error must not be cached: %d loads", loads.Load()-before)
	}
}

// Many concurrent readers of a missing key share one load, and a reader
// whose context ends does not cancel it for the others.
func TestCacheSingleLoad(t *testing.T) {
	var loads atomic.Int64
	release := make(chan struct{})
	c := &Cache[int, int]{TTL: time.Minute, Load: func(ctx context.Context, k int) (int, error) {
		loads.Add(1)
		<-release
		return k * 2, ctx.Err()
	}}
	cctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	wg.Add(1)
	go func() { // the loader, whose caller goes away
		defer wg.Done()
		_, _ = c.Get(cctx, 21)
	}()
	time.Sleep(20 * time.Millisecond)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := c.Get(context.Background(), 21)
			if err != nil || v != 42 {
				errs <- errors.New("bad answer")
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	cancel()
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if loads.Load() != 1 {
		t.Fatalf("%d loads, want 1", loads.Load())
	}
}
