package a2a

import (
	"bufio"
	"context"

	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var private = Policy{AllowPrivate: true}

func newTestUpstream(o UpstreamOptions) *Upstream {
	return NewUpstream(private, &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, o)
}

func mustTarget(t *testing.T, raw string) Target {
	t.Helper()
	tg, err := ParseTarget(raw)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func post(t *testing.T, u *Upstream, tg Target, body string, max int64) (*Answer, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return u.Post(ctx, tg, http.Header{"Content-Type": {"application/json"}}, []byte(body), max)
}

// countingServer is an httptest agent that counts new connections.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	var conns atomic.Int32
	ts := httptest.NewUnstartedServer(h)
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	ts.Start()
	t.Cleanup(ts.Close)
	return ts, &conns
}

func TestUpstreamPoolsConnections(t *testing.T) {
	ts, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" ||
			r.ContentLength != int64(len(b)) || r.URL.RequestURI() != "/rpc?x=1" || r.Host == "" ||
			r.Header.Get("Accept-Encoding") != "identity" || len(r.TransferEncoding) != 0 {
			w.WriteHeader(http.StatusTeapot)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(append([]byte("echo:"), b...))
	})
	u := newTestUpstream(UpstreamOptions{})
	defer u.CloseIdle()
	tg := mustTarget(t, ts.URL+"/rpc?x=1")
	for i := range 20 {
		body := `{"n":` + strconv.Itoa(i) + `}`
		ans, err := post(t, u, tg, body, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if ans.Status != 200 || string(ans.Body) != "echo:"+body || ans.ContentType != "application/json" {
			t.Fatalf("answer %d: %d %q %q", i, ans.Status, ans.ContentType, ans.Body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("20 sequential calls used %d connections, want 1", n)
	}
	if n := u.IdleConns(tg.Addr); n != 1 {
		t.Fatalf("idle connections = %d, want 1", n)
	}
	// Concurrent calls each get a connection; the pool keeps at most the cap.
	small := newTestUpstream(UpstreamOptions{MaxIdlePerHost: 2})
	defer small.CloseIdle()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := post(t, small, tg, `{}`, 1<<20); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := small.IdleConns(tg.Addr); n < 1 || n > 2 {
		t.Fatalf("idle connections = %d, want 1..2", n)
	}
}

// rawAgent serves each connection with fn; it records how many requests
// it read in total.
type rawAgent struct {
	ln       net.Listener
	requests atomic.Int32
	conns    atomic.Int32
}

func newRawAgent(t *testing.T, fn func(a *rawAgent, c net.Conn, br *bufio.Reader)) *rawAgent {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &rawAgent{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.conns.Add(1)
			go func() {
				defer c.Close()
				fn(a, c, bufio.NewReader(c))
			}()
		}
	}()
	return a
}

func (a *rawAgent) url() string { return "http://" + a.ln.Addr().String() + "/" }

// readRequest reads one request and its body; false at EOF.
func (a *rawAgent) readRequest(br *bufio.Reader) bool {
	req, err := http.ReadRequest(br)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, req.Body)
	a.requests.Add(1)
	return true
}

const okAnswer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

func TestUpstreamDiscardsConnectionsTheAgentClosed(t *testing.T) {
	// The agent answers one request per connection, then closes it without
	// saying so: the pooled connection is stale for the next call, which
	// must notice before sending and dial afresh.
	agent := newRawAgent(t, func(a *rawAgent, c net.Conn, br *bufio.Reader) {
		if a.readRequest(br) {
			_, _ = io.WriteString(c, okAnswer)
		}
	})
	u := newTestUpstream(UpstreamOptions{})
	defer u.CloseIdle()
	tg := mustTarget(t, agent.url())
	for i := range 3 {
		if _, err := post(t, u, tg, `{}`, 1<<20); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		time.Sleep(20 * time.Millisecond) // let the agent's close land
	}
	if r, c := agent.requests.Load(), agent.conns.Load(); r != 3 || c != 3 {
		t.Fatalf("agent saw %d requests on %d connections, want 3 on 3", r, c)
	}
}

func TestUpstreamNeverSendsACallTwice(t *testing.T) {
	// First connection answers once; every later one reads the request and
	// drops the connection without answering (a crashing agent). The call
	// fails (the proxy answers 502) and is never re-sent: the agent may
	// have acted on it.
	var first atomic.Bool
	agent := newRawAgent(t, func(a *rawAgent, c net.Conn, br *bufio.Reader) {
		if first.CompareAndSwap(false, true) {
			if a.readRequest(br) {
				_, _ = io.WriteString(c, okAnswer)
			}
			return
		}
		a.readRequest(br)
	})
	u := newTestUpstream(UpstreamOptions{})
	defer u.CloseIdle()
	tg := mustTarget(t, agent.url())
	if _, err := post(t, u, tg, `{}`, 1<<20); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // the first connection is closed by now
	if _, err := post(t, u, tg, `{}`, 1<<20); err == nil {
		t.Fatal("want an error from an agent that drops the call")
	}
	if r, c := agent.requests.Load(), agent.conns.Load(); r != 2 || c != 2 {
		// the stale pooled connection was noticed before sending (no
		// request on it), one fresh dial, one delivery
		t.Fatalf("agent saw %d requests on %d connections, want 2 on 2", r, c)
	}
	if _, err := post(t, u, tg, `{}`, 1<<20); err == nil {
		t.Fatal("want an error")
	}
	if r, c := agent.requests.Load(), agent.conns.Load(); r != 3 || c != 3 {
		t.Fatalf("agent saw %d requests on %d connections, want 3 on 3 (no resend)", r, c)
	}
}

func TestUpstreamDeadlineClosesConnection(t *testing.T) {
	closed := make(chan struct{}, 2)
	agent := newRawAgent(t, func(a *rawAgent, c net.Conn, br *bufio.Reader) {
		if a.readRequest(br) {
			// Never answer; report when the proxy hangs up.
			_, _ = br.ReadByte()
			closed <- struct{}{}
		}
	})
	u := newTestUpstream(UpstreamOptions{})
	defer u.CloseIdle()
	tg := mustTarget(t, agent.url())

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := u.Post(ctx, tg, nil, []byte(`{}`), 1<<20)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("err = %v, ctx = %v; want deadline exceeded", err, ctx.Err())
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("call took %v past a 100ms deadline", d)
	}
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("connection still open after the deadline")
	}

	// The caller going away closes the connection too.
	ctx2, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel2)
	if _, err := u.Post(ctx2, tg, nil, []byte(`{}`), 1<<20); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want canceled", err)
	}
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("connection still open after cancel")
	}
	if n := u.IdleConns(tg.Addr); n != 0 {
		t.Fatalf("idle = %d, want 0", n)
	}
}

func TestUpstreamAnswerCap(t *testing.T) {
	big := strings.Repeat("x", 1000)
	ts, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/length":
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			_, _ = io.WriteString(w, big)
		case "/chunked":
			for range 10 {
				_, _ = io.WriteString(w, big[:100])
				w.(http.Flusher).Flush()
			}
		}
	})
	u := newTestUpstream(UpstreamOptions{})
	defer u.CloseIdle()
	for _, path := range []string{"/length", "/chunked"} {
		tg := mustTarget(t, ts.URL+path)
		if _, err := post(t, u, tg, `{}`, 999); !errors.Is(err, ErrAnswerTooLarge) {
			t.Fatalf("%s over the cap: err = %v", path, err)
		}
		if n := u.IdleConns(tg.Addr); n != 0 {
			t.Fatalf("%s: a connection with an unread answer was pooled", path)
		}
		ans, err := post(t, u, tg, `{}`, 1000)
		if err != nil || len(ans.Body) != 1000 {
			t.Fatalf("%s at the cap: %v", path, err)
		}
	}
}

func TestUpstreamChunkedAnswerReusesConnection(t *testing.T) {
	ts, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		for _, part := range []string{`{"a":`, `1,`, `"b":2}`} {
			_, _ = io.WriteString(w, part)
			w.(http.Flusher).Flush()
		}
	})
	u := newTestUpstream(UpstreamOptions{})
	defer u.CloseIdle()
	tg := mustTarget(t, ts.URL)
	for range 3 {
		ans, err := post(t, u, tg, `{}`, 1<<20)
		if err != nil || string(ans.Body) != `{"a":1,"b":2}` {
			t.Fatalf("answer %v %v", ans, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("connections = %d, want 1", n)
	}
}

func TestUpstreamConnectionClose(t *testing.T) {
	ts, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = io.WriteString(w, `{}`)
	})
	u := newTestUpstream(UpstreamOptions{})
	defer u.CloseIdle()
	tg := mustTarget(t, ts.URL)
	for range 2 {
		if ans, err := post(t, u, tg, `{}`, 1<<20); err != nil || string(ans.Body) != `{}` {
			t.Fatalf("%v %v", ans, err)
		}
		if n := u.IdleConns(tg.Addr); n != 0 {
			t.Fatal("a connection the agent closes was pooled")
		}
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("connections = %d, want 2", n)
	}
}

func TestUpstreamInterimAndUnframedAnswers(t *testing.T) {
	agent := newRawAgent(t, func(a *rawAgent, c net.Conn, br *bufio.Reader) {
		for a.readRequest(br) {
			// A 100 Continue first, then an answer framed by closing.
			_, _ = io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Type: text/plain\r\n\r\nhello")
			return
		}
	})
	u := newTestUpstream(UpstreamOptions{})
	defer u.CloseIdle()
	tg := mustTarget(t, agent.url())
	ans, err := post(t, u, tg, `{}`, 1<<20)
	if err != nil || ans.Status != 201 || string(ans.Body) != "hello" || ans.ContentType != "text/plain" {
		t.Fatalf("%+v %v", ans, err)
	}
	if n := u.IdleConns(tg.Addr); n != 0 {
		t.Fatal("an answer framed by close left a pooled connection")
	}
}

func TestUpstreamIdleTimeout(t *testing.T) {
	closed := make(chan struct{}, 1)
	agent := newRawAgent(t, func(a *rawAgent, c net.Conn, br *bufio.Reader) {
		for a.readRequest(br) {
			_, _ = io.WriteString(c, okAnswer)
		}
		closed <- struct{}{}
	})
	u := newTestUpstream(UpstreamOptions{IdleTimeout: 50 * time.Millisecond})
	defer u.CloseIdle()
	tg := mustTarget(t, agent.url())
	if _, err := post(t, u, tg, `{}`, 1<<20); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
		t.Fatal("idle connection not closed after the idle timeout")
	}
	if n := u.IdleConns(tg.Addr); n != 0 {
		t.Fatalf("idle = %d after the sweep", n)
	}
	// The pool still works afterwards.
	if _, err := post(t, u, tg, `{}`, 1<<20); err != nil {
		t.Fatal(err)
	}
	u.CloseIdle()
	if n := u.IdleConns(tg.Addr); n != 0 {
		t.Fatal("CloseIdle left connections")
	}
}

func TestUpstreamPolicyAtDial(t *testing.T) {
	ts, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {})
	port := ts.Listener.Addr().(*net.TCPAddr).Port
	public := NewUpstream(Policy{}, http.DefaultClient, UpstreamOptions{})
	defer public.CloseIdle()
	for _, raw := range []string{
		ts.URL, // loopback literal under the public policy
		"http://localhost:" + strconv.Itoa(port) + "/", // a name resolving to loopback
	} {
		if _, err := post(t, public, mustTarget(t, raw), `{}`, 1<<20); !errors.Is(err, ErrRefusedAddress) {
			t.Fatalf("%s: err = %v, want refused", raw, err)
		}
	}
	// Metadata is refused even under the private policy.
	u := newTestUpstream(UpstreamOptions{})
	if _, err := post(t, u, mustTarget(t, "http://169.254.169.254/latest"), `{}`, 1<<20); !errors.Is(err, ErrRefusedAddress) {
		t.Fatalf("metadata: err = %v", err)
	}
	if n := conns.Load(); n != 0 {
		t.Fatalf("a refused address was connected to (%d)", n)
	}
}

func TestUpstreamRefusesBadHeaders(t *testing.T) {
	agent := newRawAgent(t, func(a *rawAgent, c net.Conn, br *bufio.Reader) { a.readRequest(br) })
	u := newTestUpstream(UpstreamOptions{})
	tg := mustTarget(t, agent.url())
	for _, h := range []http.Header{
		{"X-Request-Id": {"a\r\nX-Evil: 1"}},
		{"X-Bad\nName": {"v"}},
		{"X-Nul": {"a\x00b"}},
	} {
		if _, err := u.Post(context.Background(), tg, h, []byte(`{}`), 10); err == nil {
			t.Fatalf("header %v accepted", h)
		}
	}
	if c := agent.conns.Load(); c != 0 {
		t.Fatal("a request with a bad header was sent")
	}
}

func TestParseTarget(t *testing.T) {
	cases := []struct {
		raw, addr, host, uri string
		tls, bad             bool
	}{
		{raw: "http://agent:8000", addr: "agent:8000", host: "agent:8000", uri: "/"},
		{raw: "http://agent/a2a?x=1", addr: "agent:80", host: "agent", uri: "/a2a?x=1"},
		{raw: "https://agent", addr: "agent:443", host: "agent", uri: "/", tls: true},
		{raw: "http://[::1]:9000/p", addr: "[::1]:9000", host: "[::1]:9000", uri: "/p"},
		{raw: "ftp://agent", bad: true},
		{raw: "http://", bad: true},
		{raw: "::not a url", bad: true},
		{raw: "", bad: true},
	}
	for _, c := range cases {
		tg, err := ParseTarget(c.raw)
		if c.bad {
			if err == nil {
				t.Errorf("%q: want an error", c.raw)
			}
			continue
		}
		if err != nil || tg.Addr != c.addr || tg.Host != c.host || tg.RequestURI != c.uri || tg.TLS != c.tls {
			t.Errorf("%q: %+v %v", c.raw, tg, err)
		}
	}
}

func TestUpstreamHTTPSFallback(t *testing.T) {
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Workspace-Id") != "w1" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}))
	defer ts.Close()
	client := ts.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	u := NewUpstream(private, client, UpstreamOptions{})
	defer u.CloseIdle()
	ans, err := u.Post(context.Background(), mustTarget(t, ts.URL), http.Header{"X-Workspace-Id": {"w1"}}, []byte(`{}`), 1<<20)
	if err != nil || ans.Status != http.StatusFound {
		t.Fatalf("%+v %v; want the redirect passed back", ans, err)
	}
}
