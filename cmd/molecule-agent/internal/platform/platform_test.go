package platform

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// fakePlatform speaks the §5 registry API and records what it receives.
type fakePlatform struct {
	t        *testing.T
	mu       sync.Mutex
	token    string // the bearer it accepts
	regFails int    // answer 503 to this many registrations first
	hbStatus []int  // statuses for successive heartbeats (then 200)

	registers  chan RegisterRequest
	heartbeats chan map[string]any
}

func newFake(t *testing.T, token string) (*fakePlatform, *httptest.Server) {
	f := &fakePlatform{t: t, token: token, registers: make(chan RegisterRequest, 16), heartbeats: make(chan map[string]any, 16)}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakePlatform) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.Header.Get("Content-Type") != "application/json" {
		f.t.Errorf("content-type = %q", r.Header.Get("Content-Type"))
	}
	switch r.URL.Path {
	case "/registry/register":
		var body RegisterRequest
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if f.regFails > 0 {
			f.regFails--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		f.registers <- body
		_, _ = w.Write([]byte(`{"status":"registered"}`))
	case "/registry/heartbeat":
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		f.heartbeats <- body
		if len(f.hbStatus) > 0 {
			st := f.hbStatus[0]
			f.hbStatus = f.hbStatus[1:]
			w.WriteHeader(st)
			return
		}
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// manualClock hands the loop tickers and timers the test controls.
type manualClock struct {
	tick      chan time.Time
	intervals chan time.Duration
	waits     chan time.Duration
}

func newManualClock() *manualClock {
	return &manualClock{tick: make(chan time.Time), intervals: make(chan time.Duration, 8), waits: make(chan time.Duration, 16)}
}

func (c *manualClock) NewTicker(d time.Duration) (<-chan time.Time, func()) {
	c.intervals <- d
	return c.tick, func() {}
}

func (c *manualClock) After(d time.Duration) <-chan time.Time {
	c.waits <- d
	ch := make(chan time.Time, 1)
	ch <- time.Time{} // fire at once: the test checks the delay, not the wait
	return ch
}

type tokenBox struct {
	mu  sync.Mutex
	tok string
	err error
}

func (b *tokenBox) get() (string, error) { b.mu.Lock(); defer b.mu.Unlock(); return b.tok, b.err }
func (b *tokenBox) set(t string)         { b.mu.Lock(); defer b.mu.Unlock(); b.tok = t }

func startLoop(t *testing.T, srv *httptest.Server, tok *tokenBox, clk *manualClock, beat BeatFunc) (cancel func()) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	l := &Loop{
		Client:     &Client{BaseURL: srv.URL, WorkspaceID: "ws-1", Token: tok.get, HTTP: srv.Client()},
		AgentURL:   "http://ws-1:8000",
		Card:       map[string]any{"name": "agent"},
		Beat:       beat,
		Interval:   42 * time.Second,
		MinBackoff: 100 * time.Millisecond,
		MaxBackoff: 400 * time.Millisecond,
		NewTicker:  clk.NewTicker,
		After:      clk.After,
	}
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	return func() {
		stop()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("loop did not stop on cancel")
		}
	}
}

func constBeat(acks *int, mu *sync.Mutex) BeatFunc {
	return func() (Heartbeat, func()) {
		return Heartbeat{ErrorRate: 0.25, SampleError: "boom", ActiveTasks: 2, CurrentTask: "doing", UptimeSeconds: 9, MonthlySpend: 123},
			func() { mu.Lock(); *acks++; mu.Unlock() }
	}
}

func TestRegistrationRetriesWithBackoff(t *testing.T) {
	f, srv := newFake(t, "tok")
	f.regFails = 4
	clk := newManualClock()
	var mu sync.Mutex
	acks := 0
	stop := startLoop(t, srv, &tokenBox{tok: "tok"}, clk, constBeat(&acks, &mu))
	defer stop()

	reg := <-f.registers
	if reg.ID != "ws-1" || reg.URL != "http://ws-1:8000" {
		t.Errorf("register body = %+v", reg)
	}
	if card, ok := reg.AgentCard.(map[string]any); !ok || card["name"] != "agent" {
		t.Errorf("agent_card = %v", reg.AgentCard)
	}
	// Four failures → four waits: 100, 200, 400, 400 ms (±20% jitter).
	for i, want := range []time.Duration{100, 200, 400, 400} {
		got := <-clk.waits
		want *= time.Millisecond
		if got < want*8/10 || got > want*12/10 {
			t.Errorf("wait %d = %v, want about %v", i, got, want)
		}
	}
	if d := <-clk.intervals; d != 42*time.Second {
		t.Errorf("heartbeat interval = %v", d)
	}
}

func TestHeartbeatBodiesAndAck(t *testing.T) {
	f, srv := newFake(t, "tok")
	// Beats 1 and 3 fail, beat 2 succeeds: exactly one ack.
	f.hbStatus = []int{http.StatusInternalServerError, http.StatusOK, http.StatusBadGateway}
	clk := newManualClock()
	var mu sync.Mutex
	acks := 0
	stop := startLoop(t, srv, &tokenBox{tok: "tok"}, clk, constBeat(&acks, &mu))
	defer stop()
	<-f.registers
	<-clk.intervals

	clk.tick <- time.Now()
	hb := <-f.heartbeats // answered 500: not acked, loop keeps going
	want := map[string]any{
		"workspace_id": "ws-1", "error_rate": 0.25, "sample_error": "boom", "active_tasks": float64(2),
		"current_task": "doing", "uptime_seconds": float64(9), "monthly_spend": float64(123),
	}
	for k, v := range want {
		if hb[k] != v {
			t.Errorf("heartbeat[%s] = %v, want %v", k, hb[k], v)
		}
	}
	clk.tick <- time.Now()
	<-f.heartbeats
	clk.tick <- time.Now()
	<-f.heartbeats
	stop()
	mu.Lock()
	defer mu.Unlock()
	if acks != 1 {
		t.Errorf("acks = %d, want 1: failed beats must not be acked", acks)
	}
	select {
	case r := <-f.registers:
		t.Errorf("a 500 heartbeat must not re-register: %+v", r)
	default:
	}
}

func TestHeartbeatRejectionReRegisters(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusNotFound} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			f, srv := newFake(t, "old")
			clk := newManualClock()
			var mu sync.Mutex
			acks := 0
			tok := &tokenBox{tok: "old"}
			stop := startLoop(t, srv, tok, clk, constBeat(&acks, &mu))
			defer stop()
			<-f.registers
			<-clk.intervals

			if status == http.StatusUnauthorized {
				// Token rotated: the platform accepts only the new one, and
				// the file now holds it.
				f.mu.Lock()
				f.token = "new"
				f.mu.Unlock()
				tok.set("new")
				// The beat itself goes out with the new token (re-read per
				// request); make the platform reject it anyway.
			}
			f.mu.Lock()
			f.hbStatus = []int{status}
			f.mu.Unlock()
			clk.tick <- time.Now()
			<-f.heartbeats
			if reg := <-f.registers; reg.ID != "ws-1" {
				t.Errorf("re-register body = %+v", reg)
			}
			if d := <-clk.intervals; d != 42*time.Second {
				t.Errorf("heartbeat restarted with %v", d)
			}
		})
	}
}

func TestRegistrationWithoutTokenKeepsRetrying(t *testing.T) {
	f, srv := newFake(t, "tok")
	clk := newManualClock()
	var mu sync.Mutex
	acks := 0
	tok := &tokenBox{err: errors.New("no file")}
	stop := startLoop(t, srv, tok, clk, constBeat(&acks, &mu))
	defer stop()
	<-clk.waits
	<-clk.waits
	tok.mu.Lock()
	tok.tok, tok.err = "tok", nil
	tok.mu.Unlock()
	// The loop may have retried again before it saw the token; keep taking
	// its waits so a full buffer never blocks it (the clock fires at once,
	// so on a loaded machine it can retry many times).
	drained := make(chan struct{})
	defer close(drained)
	go func() {
		for {
			select {
			case <-clk.waits:
			case <-drained:
				return
			}
		}
	}()
	if reg := <-f.registers; reg.ID != "ws-1" {
		t.Errorf("reg = %+v", reg)
	}
}

func TestLoopStopsWhileRetrying(t *testing.T) {
	_, srv := newFake(t, "tok")
	ctx, cancel := context.WithCancel(context.Background())
	l := &Loop{
		Client: &Client{BaseURL: srv.URL, WorkspaceID: "ws-1", Token: func() (string, error) { return "wrong", nil }},
		Beat:   func() (Heartbeat, func()) { return Heartbeat{}, nil },
		// Real timers: the first retry waits an hour, so only cancel ends it.
		MinBackoff: time.Hour,
	}
	retrying := make(chan struct{})
	l.After = func(d time.Duration) <-chan time.Time { close(retrying); return time.After(d) }
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	<-retrying
	cancel()
	<-done
}

func TestClientErrors(t *testing.T) {
	c := &Client{BaseURL: "http://127.0.0.1:1", WorkspaceID: "ws", Token: func() (string, error) { return "", nil }}
	if err := c.Register(context.Background(), "u", nil); !errors.Is(err, ErrNoToken) {
		t.Errorf("no token: %v", err)
	}
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	c = &Client{BaseURL: base, WorkspaceID: "ws", Token: func() (string, error) { return "t", nil }}
	if err := c.SendHeartbeat(context.Background(), Heartbeat{}); !errors.Is(err, ErrUnreachable) {
		t.Errorf("unreachable: %v", err)
	}
	c.BaseURL = "http://bad host"
	if err := c.Register(context.Background(), "u", nil); !errors.Is(err, ErrUnreachable) {
		t.Errorf("bad url: %v", err)
	}
}

func TestGitHubToken(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		check  func(t *testing.T, tok InstallationToken, err error)
	}{
		{"ok", 200, `{"token":"ghs_abc","expires_at":"2026-01-02T03:04:05Z"}`, func(t *testing.T, tok InstallationToken, err error) {
			if err != nil || tok.Token != "ghs_abc" || !tok.ExpiresAt.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
				t.Errorf("tok = %+v, err = %v", tok, err)
			}
		}},
		{"404 none configured", 404, `{"error":"not found","code":"not_found"}`, func(t *testing.T, _ InstallationToken, err error) {
			if !IsStatus(err, 404) {
				t.Errorf("err = %v", err)
			}
		}},
		{"500", 500, `{"error":"internal error"}`, func(t *testing.T, _ InstallationToken, err error) {
			if !IsStatus(err, 500) {
				t.Errorf("err = %v", err)
			}
		}},
		{"empty token", 200, `{"token":""}`, func(t *testing.T, _ InstallationToken, err error) {
			if !errors.Is(err, ErrBadResponse) {
				t.Errorf("err = %v", err)
			}
		}},
		{"bad json", 200, `{"token":`, func(t *testing.T, _ InstallationToken, err error) {
			if !errors.Is(err, ErrBadResponse) {
				t.Errorf("err = %v", err)
			}
		}},
		{"wrong type", 200, `{"token":5}`, func(t *testing.T, _ InstallationToken, err error) {
			if !errors.Is(err, ErrBadResponse) {
				t.Errorf("err = %v", err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodGet || r.URL.Path != "/workspaces/ws-9/github-installation-token" ||
					r.Header.Get("Authorization") != "Bearer wtok" {
					t.Errorf("request %s %s auth %q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c := &Client{BaseURL: srv.URL, WorkspaceID: "ws-9", Token: func() (string, error) { return "wtok", nil }, HTTP: srv.Client()}
			tok, err := c.GitHubToken(context.Background())
			tc.check(t, tok, err)
		})
	}
}
