package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/apptest"
)

// fakeAgent is a real HTTP server speaking A2A JSON-RPC: message/send
// answers with a Message echoing the text, carrying the usage the test
// set. It records every request it received.
type fakeAgent struct {
	*httptest.Server
	mu    sync.Mutex
	reqs  []agentRequest
	usage map[string]any // result.usage of the next answers (nil: none)
	// handle, when set, replaces the default answer.
	handle func(w http.ResponseWriter, r *http.Request, body []byte) bool
}

type agentRequest struct {
	Path   string
	Header http.Header
	Body   map[string]any
	Raw    []byte
}

func newAgent(t *testing.T) *fakeAgent {
	t.Helper()
	a := &fakeAgent{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		_ = json.Unmarshal(raw, &body)
		a.mu.Lock()
		a.reqs = append(a.reqs, agentRequest{Path: r.URL.Path, Header: r.Header.Clone(), Body: body, Raw: raw})
		handle, usage := a.handle, a.usage
		a.mu.Unlock()
		if handle != nil && handle(w, r, raw) {
			return
		}
		text := ""
		if p, ok := body["params"].(map[string]any); ok {
			if m, ok := p["message"].(map[string]any); ok {
				if parts, ok := m["parts"].([]any); ok && len(parts) > 0 {
					text, _ = parts[0].(map[string]any)["text"].(string)
				}
			}
		}
		result := map[string]any{"kind": "message", "role": "agent", "messageId": uuid.NewString(),
			"parts": []any{map[string]any{"kind": "text", "text": "echo " + strings.TrimPrefix(r.URL.Path, "/") + ": " + text}}}
		if usage != nil {
			result["usage"] = usage
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": body["id"], "result": result})
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *fakeAgent) requests() []agentRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]agentRequest(nil), a.reqs...)
}

func (a *fakeAgent) setUsage(u map[string]any) { a.mu.Lock(); a.usage = u; a.mu.Unlock() }

func (a *fakeAgent) setHandler(h func(w http.ResponseWriter, r *http.Request, body []byte) bool) {
	a.mu.Lock()
	a.handle = h
	a.mu.Unlock()
}

// exec runs SQL against the instance's database (test setup only) and
// drops the proxy's cache of the workspace, as the registry does on a
// change.
func sqlExec(t *testing.T, in *apptest.Instance, id uuid.UUID, q string, args ...any) {
	t.Helper()
	if _, err := in.App.Store.DB.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	in.App.Server.InvalidateA2A(id)
}

func setURL(t *testing.T, in *apptest.Instance, id uuid.UUID, url string) {
	t.Helper()
	sqlExec(t, in, id, `UPDATE workspaces SET url = $2 WHERE id = $1`, id, url)
}

func msg(text string) map[string]any {
	return map[string]any{"message": map[string]any{"role": "user", "parts": []any{map[string]any{"kind": "text", "text": text}}}}
}

func a2aPath(id uuid.UUID) string { return "/workspaces/" + id.String() + "/a2a" }
