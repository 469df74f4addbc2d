package api_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/moleculesai/molecule/internal/apptest"
)

// The proxy keeps its agent connections: serial calls share one, and each
// call carries the caller's identity and the request id.
func TestA2AProxyReusesAgentConnection(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	var conns atomic.Int32
	var mu sync.Mutex
	var seen []http.Header
	agent := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":"1","result":{"kind":"message","role":"agent","messageId":"a","parts":[]}}`)
	}))
	agent.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	agent.Start()
	defer agent.Close()

	parent, _ := in.CreateWorkspaceRow("pool-parent", nil)
	caller, callerTok := in.CreateWorkspaceRow("pool-caller", &parent)
	target, _ := in.CreateWorkspaceRow("pool-target", &parent)
	setURL(t, in, target, agent.URL)
	for i := range 10 {
		r := in.Do("POST", a2aPath(target), callerTok, msg("hi"), "X-Request-ID", "req-pool-1")
		if r.Status != 200 {
			t.Fatalf("call %d: %d %s", i, r.Status, r.Body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("10 serial calls opened %d agent connections, want 1", n)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, h := range seen {
		if h.Get("X-Workspace-ID") != caller.String() || h.Get("X-Request-ID") != "req-pool-1" ||
			h.Get("Content-Type") != "application/json" || h.Get("Accept") != "application/json" {
			t.Fatalf("agent saw headers %v", h)
		}
	}
}
