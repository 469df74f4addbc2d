package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/moleculesai/molecule/cmd/molecule-agent/internal/llm"
)

type rpcOut struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  *struct {
		Kind      string `json:"kind"`
		Role      string `json:"role"`
		MessageID string `json:"messageId"`
		ContextID string `json:"contextId"`
		Parts     []Part `json:"parts"`
		Usage     *Usage `json:"usage"`
	} `json:"result"`
	Error *rpcError `json:"error"`
}

func newTestServer(r llm.Responder) (*Server, *State) {
	st := NewState(nil)
	return New(Options{
		Card:      Card{Name: "n", Description: "d", URL: "http://ws:8000", Version: "1", Skills: []CardSkill{{ID: "s", Name: "S", Tags: []string{}}}},
		Responder: r, State: st, InputUSDPerMTok: 3, OutputUSDPerMTok: 15,
	}), st
}

func post(t *testing.T, h http.Handler, path, body string) (*httptest.ResponseRecorder, rpcOut) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
	var out rpcOut
	if rec.Body.Len() > 0 {
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("response is not JSON: %q", rec.Body.String())
		}
	}
	return rec, out
}

const sendBody = `{"jsonrpc":"2.0","id":"req-1","method":"message/send","params":{"message":{"role":"user","messageId":"m1","contextId":"c1","parts":[{"kind":"text","text":"hello"}]}}}`

func TestMessageSendEchoOnBothPaths(t *testing.T) {
	srv, st := newTestServer(llm.Echo{})
	for _, path := range []string{"/", "/a2a"} {
		rec, out := post(t, srv, path, sendBody)
		if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%s: status %d ct %q", path, rec.Code, rec.Header().Get("Content-Type"))
		}
		if out.JSONRPC != "2.0" || string(out.ID) != `"req-1"` || out.Error != nil || out.Result == nil {
			t.Fatalf("%s: %s", path, rec.Body.String())
		}
		r := out.Result
		if r.Kind != "message" || r.Role != "agent" || r.MessageID == "" || r.MessageID == "m1" || r.ContextID != "c1" {
			t.Errorf("%s: result = %+v", path, r)
		}
		if len(r.Parts) != 1 || r.Parts[0].Kind != "text" || r.Parts[0].Text != "echo: hello" {
			t.Errorf("%s: parts = %+v", path, r.Parts)
		}
		// 5 bytes in → 2 tokens; "echo: hello" 11 bytes → 3 tokens.
		if r.Usage == nil || r.Usage.InputTokens != 2 || r.Usage.OutputTokens != 3 {
			t.Errorf("%s: usage = %+v", path, r.Usage)
		}
	}
	snap := st.Snapshot()
	if snap.Succeeded != 2 || snap.Failed != 0 || snap.ActiveTasks != 0 || snap.MonthlySpend != 0 {
		t.Errorf("state after echo calls = %+v (echo is free)", snap)
	}
}

func TestMessageSendAcceptsLegacyAndNumericIDs(t *testing.T) {
	srv, _ := newTestServer(llm.Echo{})
	body := `{"jsonrpc":"2.0","id":7,"method":"message/send","params":{"message":{"role":"user","parts":[{"type":"text","text":"a"},{"kind":"file","file":{}},{"kind":"text","text":"b"}]}}}`
	_, out := post(t, srv, "/", body)
	if out.Error != nil || string(out.ID) != "7" || out.Result.Parts[0].Text != "echo: a\nb" {
		t.Errorf("out = %+v", out)
	}
}

func TestJSONRPCErrors(t *testing.T) {
	cases := []struct {
		name     string
		body     string
		wantCode int
		wantID   string
	}{
		{"invalid json", `{"jsonrpc":"2.0",`, CodeParseError, "null"},
		{"not json at all", `hello`, CodeParseError, "null"},
		{"empty body", ``, CodeParseError, "null"},
		{"invalid batch json", `[{]`, CodeParseError, "null"},
		{"batch", `[{"jsonrpc":"2.0","id":1,"method":"message/send"}]`, CodeInvalidRequest, "null"},
		{"json but not object", `"hi"`, CodeInvalidRequest, "null"},
		{"method wrong type", `{"jsonrpc":"2.0","id":1,"method":5}`, CodeInvalidRequest, "null"},
		{"missing jsonrpc", `{"id":1,"method":"message/send"}`, CodeInvalidRequest, "1"},
		{"wrong version", `{"jsonrpc":"1.0","id":1,"method":"message/send"}`, CodeInvalidRequest, "1"},
		{"missing method", `{"jsonrpc":"2.0","id":1}`, CodeInvalidRequest, "1"},
		{"object id", `{"jsonrpc":"2.0","id":{"a":1},"method":"message/send"}`, CodeInvalidRequest, "null"},
		{"unknown method", `{"jsonrpc":"2.0","id":"x","method":"tasks/cancel","params":{}}`, CodeMethodNotFound, `"x"`},
		{"stream unsupported", `{"jsonrpc":"2.0","id":"x","method":"message/stream","params":{}}`, CodeMethodNotFound, `"x"`},
		{"no params", `{"jsonrpc":"2.0","id":2,"method":"message/send"}`, CodeInvalidParams, "2"},
		{"null params", `{"jsonrpc":"2.0","id":2,"method":"message/send","params":null}`, CodeInvalidParams, "2"},
		{"params array", `{"jsonrpc":"2.0","id":2,"method":"message/send","params":[1]}`, CodeInvalidParams, "2"},
		{"no message", `{"jsonrpc":"2.0","id":2,"method":"message/send","params":{}}`, CodeInvalidParams, "2"},
		{"message wrong type", `{"jsonrpc":"2.0","id":2,"method":"message/send","params":{"message":"hi"}}`, CodeInvalidParams, "2"},
		{"bad role", `{"jsonrpc":"2.0","id":2,"method":"message/send","params":{"message":{"role":"system","parts":[{"kind":"text","text":"x"}]}}}`, CodeInvalidParams, "2"},
		{"no parts", `{"jsonrpc":"2.0","id":2,"method":"message/send","params":{"message":{"role":"user","parts":[]}}}`, CodeInvalidParams, "2"},
		{"parts wrong type", `{"jsonrpc":"2.0","id":2,"method":"message/send","params":{"message":{"role":"user","parts":"x"}}}`, CodeInvalidParams, "2"},
		{"no text part", `{"jsonrpc":"2.0","id":2,"method":"message/send","params":{"message":{"role":"user","parts":[{"kind":"data","data":{}}]}}}`, CodeInvalidParams, "2"},
		{"empty text", `{"jsonrpc":"2.0","id":2,"method":"message/send","params":{"message":{"role":"user","parts":[{"kind":"text","text":""}]}}}`, CodeInvalidParams, "2"},
	}
	srv, st := newTestServer(llm.Echo{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec, out := post(t, srv, "/", tc.body)
			if rec.Code != 200 {
				t.Errorf("HTTP status %d, JSON-RPC errors travel in a 200", rec.Code)
			}
			if out.Error == nil || out.Error.Code != tc.wantCode || out.Result != nil {
				t.Fatalf("got %s, want code %d", rec.Body.String(), tc.wantCode)
			}
			if string(out.ID) != tc.wantID || out.JSONRPC != "2.0" {
				t.Errorf("id = %s jsonrpc %q, want id %s", out.ID, out.JSONRPC, tc.wantID)
			}
		})
	}
	if snap := st.Snapshot(); snap.Succeeded+snap.Failed != 0 {
		t.Errorf("rejected requests must not count as calls: %+v", snap)
	}
}

func TestNotificationGetsNoBody(t *testing.T) {
	srv, st := newTestServer(llm.Echo{})
	rec, _ := post(t, srv, "/", `{"jsonrpc":"2.0","method":"message/send","params":{"message":{"role":"user","parts":[{"kind":"text","text":"x"}]}}}`)
	if rec.Code != http.StatusNoContent || rec.Body.Len() != 0 {
		t.Errorf("notification: %d %q", rec.Code, rec.Body.String())
	}
	if st.Snapshot().Succeeded != 1 {
		t.Error("notification should still be processed")
	}
}

func TestOversizedBody(t *testing.T) {
	srv, _ := newTestServer(llm.Echo{})
	big := `{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"role":"user","parts":[{"kind":"text","text":"` +
		strings.Repeat("a", MaxBody) + `"}]}}}`
	rec, out := post(t, srv, "/", big)
	if rec.Code != http.StatusRequestEntityTooLarge || out.Error == nil || out.Error.Code != CodeInvalidRequest {
		t.Errorf("oversized: %d %s", rec.Code, rec.Body.String()[:min(200, rec.Body.Len())])
	}
}

func TestWrongMethodAndPath(t *testing.T) {
	srv, _ := newTestServer(llm.Echo{})
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/", http.StatusMethodNotAllowed},
		{http.MethodPut, "/a2a", http.StatusMethodNotAllowed},
		{http.MethodPost, "/elsewhere", http.StatusNotFound},
		{http.MethodPost, "/.well-known/agent-card.json", http.StatusMethodNotAllowed},
	} {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, strings.NewReader("{}")))
		if rec.Code != tc.want {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, rec.Code, tc.want)
		}
	}
}

func TestAgentCardAndHealth(t *testing.T) {
	srv, _ := newTestServer(llm.Echo{})
	for _, path := range []string{"/.well-known/agent-card.json", "/.well-known/agent.json"} {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		var card map[string]any
		if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &card) != nil {
			t.Fatalf("%s: %d %s", path, rec.Code, rec.Body.String())
		}
		for _, k := range []string{"name", "description", "url", "version", "capabilities", "skills", "defaultInputModes", "protocolVersion"} {
			if _, ok := card[k]; !ok {
				t.Errorf("%s: card lacks %q: %v", path, k, card)
			}
		}
		if card["url"] != "http://ws:8000" || card["name"] != "n" {
			t.Errorf("card = %v", card)
		}
		skills, _ := card["skills"].([]any)
		if len(skills) != 1 || skills[0].(map[string]any)["id"] != "s" {
			t.Errorf("skills = %v", card["skills"])
		}
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"status":"ok"`) || !strings.Contains(rec.Body.String(), `"provider":"echo"`) {
		t.Errorf("health = %d %s", rec.Code, rec.Body.String())
	}
}

func TestEmptySkillsEncodeAsArray(t *testing.T) {
	srv := New(Options{Responder: llm.Echo{}})
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/agent-card.json", nil))
	if !strings.Contains(rec.Body.String(), `"skills":[]`) {
		t.Errorf("card = %s", rec.Body.String())
	}
}

// failing is a Responder whose error would leak if passed through.
type failing struct{}

func (failing) Provider() string { return "fake" }
func (failing) Metered() bool    { return true }
func (failing) Respond(context.Context, llm.Request) (llm.Reply, error) {
	return llm.Reply{}, errors.Join(&llm.StatusError{Status: 500}, errors.New("upstream said sk-SECRET"))
}

func TestLLMFailureIsGeneric(t *testing.T) {
	srv, st := newTestServer(failing{})
	rec, out := post(t, srv, "/", sendBody)
	if out.Error == nil || out.Error.Code != CodeLLMFailed || out.Result != nil {
		t.Fatalf("got %s", rec.Body.String())
	}
	if strings.Contains(rec.Body.String(), "SECRET") || strings.Contains(rec.Body.String(), "500") {
		t.Errorf("upstream detail leaked: %s", rec.Body.String())
	}
	snap := st.Snapshot()
	if snap.Failed != 1 || snap.ErrorRate != 1 || snap.SampleError == "" || snap.ActiveTasks != 0 {
		t.Errorf("state = %+v", snap)
	}
}

// metered answers with fixed usage and costs money.
type metered struct{ in, out int64 }

func (metered) Provider() string { return "fake" }
func (metered) Metered() bool    { return true }
func (m metered) Respond(_ context.Context, r llm.Request) (llm.Reply, error) {
	return llm.Reply{Text: "ok " + r.Model + " " + r.System, InputTokens: m.in, OutputTokens: m.out}, nil
}

func TestMeteredSpend(t *testing.T) {
	st := NewState(nil)
	srv := New(Options{Responder: metered{in: 1_000_000, out: 100_000}, State: st, Model: "mdl", System: "sys",
		InputUSDPerMTok: 3, OutputUSDPerMTok: 15})
	_, out := post(t, srv, "/", sendBody)
	if out.Error != nil || out.Result.Parts[0].Text != "ok mdl sys" {
		t.Fatalf("out = %+v", out)
	}
	if out.Result.Usage.InputTokens != 1_000_000 || out.Result.Usage.OutputTokens != 100_000 {
		t.Errorf("usage = %+v", out.Result.Usage)
	}
	// $3 + $1.50 = 450 cents.
	if got := st.Snapshot().MonthlySpend; got != 450 {
		t.Errorf("MonthlySpend = %d, want 450", got)
	}
}

// gated blocks every call until released, announcing each start.
type gated struct {
	started chan string
	release chan struct{}
}

func (gated) Provider() string { return "gated" }
func (gated) Metered() bool    { return false }
func (g gated) Respond(ctx context.Context, r llm.Request) (llm.Reply, error) {
	g.started <- r.Text
	select {
	case <-g.release:
		return llm.Reply{Text: r.Text}, nil
	case <-ctx.Done():
		return llm.Reply{}, ctx.Err()
	}
}

func TestActiveTaskTracking(t *testing.T) {
	g := gated{started: make(chan string), release: make(chan struct{})}
	srv, st := newTestServer(g)
	body := func(text string) string {
		return `{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"role":"user","parts":[{"kind":"text","text":"` + text + `"}]}}}`
	}
	var wg sync.WaitGroup
	for _, text := range []string{"first task\\nsecond line", "second task"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body(text))))
		}()
		<-g.started // the task is registered before the responder runs
	}
	snap := st.Snapshot()
	if snap.ActiveTasks != 2 || snap.CurrentTask != "second task" {
		t.Errorf("while busy: %+v", snap)
	}
	g.release <- struct{}{}
	g.release <- struct{}{}
	wg.Wait()
	snap = st.Snapshot()
	if snap.ActiveTasks != 0 || snap.CurrentTask != "" || snap.Succeeded != 2 {
		t.Errorf("after: %+v", snap)
	}
}
