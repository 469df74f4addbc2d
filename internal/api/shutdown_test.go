package api_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/moleculesai/molecule/internal/apptest"
)

// Graceful shutdown (§19): a request in flight when the server is told to
// stop is finished and answered; new connections are refused afterwards.
func TestGracefulShutdownDrainsInFlightRequests(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	received := make(chan struct{})
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(received)
		time.Sleep(300 * time.Millisecond) // still working when the server is told to stop
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"jsonrpc":"2.0","id":"1","result":{"kind":"message","role":"agent","parts":[]}}`))
	}))
	defer agent.Close()
	id, tok := in.CreateWorkspaceRow("slow", nil)
	wantStatus(t, in.Do("POST", "/registry/register", tok, map[string]any{"id": id.String(), "url": agent.URL}), 200)

	answered := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", in.URL+"/workspaces/"+id.String()+"/a2a",
			strings.NewReader(`{"method":"message/send","params":{"message":{"role":"user","parts":[{"kind":"text","text":"hi"}]}}}`))
		req.Header.Set("Authorization", "Bearer "+in.Admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- -1
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	<-received
	stopped := make(chan error, 1)
	go func() { stopped <- in.Stop() }()
	select {
	case code := <-answered:
		if code != 200 {
			t.Fatalf("in-flight request answered %d during shutdown, want 200", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("in-flight request never answered")
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Run returned %v after a graceful stop", err)
	}
	if _, err := http.Get(in.URL + "/health"); err == nil {
		t.Fatal("the server still accepts connections after stopping")
	}
}
