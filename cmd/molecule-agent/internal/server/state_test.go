package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

func TestStateErrorRateAndAck(t *testing.T) {
	st := NewState(nil)
	st.Begin("a")(nil)
	st.Begin("b")(errors.New("llm provider answered HTTP 529"))
	st.Begin("hung up")(fmt.Errorf("llm: %w", context.Canceled))
	end := st.Begin("c")
	end(nil)
	end(errors.New("second end is ignored"))

	snap := st.Snapshot()
	if snap.Succeeded != 2 || snap.Failed != 1 || snap.SampleError != "llm provider answered HTTP 529" {
		t.Fatalf("snap = %+v", snap)
	}
	if snap.ErrorRate < 0.333 || snap.ErrorRate > 0.334 {
		t.Errorf("ErrorRate = %v", snap.ErrorRate)
	}
	// A call finishing between Snapshot and Ack survives the Ack.
	st.Begin("d")(nil)
	st.Ack(snap)
	after := st.Snapshot()
	if after.Succeeded != 1 || after.Failed != 0 || after.ErrorRate != 0 || after.SampleError != "" {
		t.Errorf("after ack = %+v", after)
	}
	st.Ack(snap) // double ack never goes negative
	if s := st.Snapshot(); s.Succeeded != 0 || s.Failed != 0 {
		t.Errorf("after double ack = %+v", s)
	}
}

func TestStateSpendRollsOverMonthly(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 31, 23, 0, 0, 0, time.UTC)
	st := NewState(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	st.AddSpend(100, 100, 3, 15) // 300 + 1500 micro-USD
	st.AddSpend(0, 0, 3, 15)     // nothing
	st.AddSpend(-5, -5, 3, 15)   // negative ignored
	st.AddSpend(1000, 0, 3, 15)  // 3000
	if got := st.Snapshot().MonthlySpend; got != 0 {
		t.Errorf("4800 micro-USD is under a cent: %d", got)
	}
	st.AddSpend(2_000_000, 0, 3, 15) // $6
	if got := st.Snapshot().MonthlySpend; got != 600 {
		t.Errorf("spend = %d, want 600", got)
	}
	mu.Lock()
	now = now.Add(2 * time.Hour) // February, UTC
	mu.Unlock()
	if got := st.Snapshot().MonthlySpend; got != 0 {
		t.Errorf("new month spend = %d, want 0", got)
	}
}

func TestStateConcurrent(t *testing.T) {
	st := NewState(nil)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			end := st.Begin("t")
			_ = st.Snapshot()
			st.AddSpend(10, 10, 3, 15)
			if i%5 == 0 {
				end(errors.New("x"))
			} else {
				end(nil)
			}
		}()
	}
	wg.Wait()
	s := st.Snapshot()
	if s.ActiveTasks != 0 || s.Succeeded != 40 || s.Failed != 10 {
		t.Errorf("snap = %+v", s)
	}
}

func TestSummarize(t *testing.T) {
	if got := summarize("line one\nline two"); got != "line one" {
		t.Errorf("got %q", got)
	}
	if got := summarize("crlf\r\nrest"); got != "crlf" {
		t.Errorf("got %q", got)
	}
	long := strings.Repeat("é", 500)
	got := summarize(long)
	if utf8.RuneCountInString(got) != currentTaskMax || !strings.HasSuffix(got, "…") || !utf8.ValidString(got) {
		t.Errorf("long summary: %d runes", utf8.RuneCountInString(got))
	}
	exact := strings.Repeat("a", currentTaskMax)
	if summarize(exact) != exact {
		t.Error("exact-length text must not be cut")
	}
}
