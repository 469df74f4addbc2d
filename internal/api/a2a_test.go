package api_test

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/apptest"
	"github.com/moleculesai/molecule/internal/apptest/kit"
)

// The tree:
//
//	root1                 root2
//	├── a                 └── x
//	│   ├── a1
//	│   │   └── a1x
//	│   └── a2
//	└── b
//	    └── b1
type tree struct {
	ids    map[string]uuid.UUID
	tokens map[string]string
	agent  *fakeAgent
}

func buildTree(t *testing.T, in *apptest.Instance) *tree {
	t.Helper()
	tr := &tree{ids: map[string]uuid.UUID{}, tokens: map[string]string{}, agent: newAgent(t)}
	add := func(name, parent string) {
		var p *uuid.UUID
		if parent != "" {
			id := tr.ids[parent]
			p = &id
		}
		tr.ids[name], tr.tokens[name] = in.CreateWorkspaceRow(name, p)
		setURL(t, in, tr.ids[name], tr.agent.URL+"/"+name)
	}
	add("root1", "")
	add("root2", "")
	add("a", "root1")
	add("b", "root1")
	add("a1", "a")
	add("a2", "a")
	add("a1x", "a1")
	add("b1", "b")
	add("x", "root2")
	return tr
}

func TestA2AAccessAcrossTheTree(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	tr := buildTree(t, in)
	cases := []struct {
		caller, target string
		allowed        bool
	}{
		{"a", "a", true},         // self
		{"a", "a1", true},        // parent → child
		{"a1", "a", true},        // child → parent
		{"a1", "a2", true},       // siblings
		{"a", "b", true},         // siblings under a root
		{"root1", "a1x", true},   // ancestor → descendant
		{"a1x", "root1", true},   // descendant → ancestor
		{"a1x", "a", true},       // grandchild → grandparent
		{"root1", "root2", true}, // root ↔ root
		{"a1", "b1", false},      // cousins
		{"b1", "a1", false},      // cousins, the other way
		{"a1x", "a2", false},     // nephew → uncle
		{"a2", "a1x", false},     // uncle → nephew
		{"a", "x", false},        // across trees
		{"root1", "x", false},    // root → another tree's child
		{"b1", "root2", false},   // child → another root
		{"a1x", "b1", false},     // second cousins
		{"root2", "a1x", false},  // root → another tree's grandchild
		{"x", "root1", false},    // child → another root
	}
	for _, c := range cases {
		r := in.Do("POST", a2aPath(tr.ids[c.target]), tr.tokens[c.caller], msg("hi from "+c.caller))
		if c.allowed {
			if r.Status != 200 {
				t.Errorf("%s → %s: %d %s, want 200", c.caller, c.target, r.Status, r.Body)
				continue
			}
			var ans struct {
				Result struct {
					Parts []struct{ Text string }
				}
			}
			r.JSON(t, &ans)
			if want := "echo " + c.target + ": hi from " + c.caller; len(ans.Result.Parts) != 1 || ans.Result.Parts[0].Text != want {
				t.Errorf("%s → %s: answer %s", c.caller, c.target, r.Body)
			}
		} else if msg, code := r.ErrorBody(t); r.Status != 403 || msg != "access denied" || code != "forbidden" {
			t.Errorf("%s → %s: %d %s, want 403 access denied", c.caller, c.target, r.Status, r.Body)
		}
	}
	// The user reaches every workspace.
	for name, id := range tr.ids {
		if r := in.Do("POST", a2aPath(id), in.Admin, msg("from the user")); r.Status != 200 {
			t.Errorf("admin → %s: %d %s", name, r.Status, r.Body)
		}
	}
	// The agent learns who calls, never the caller's credential.
	for _, req := range tr.agent.requests() {
		if req.Header.Get("Authorization") != "" {
			t.Fatal("the caller's bearer was forwarded to the agent")
		}
	}
	reqs := tr.agent.requests()
	if got := reqs[0].Header.Get("X-Workspace-ID"); got != tr.ids["a"].String() {
		t.Fatalf("agent saw X-Workspace-ID %q, want the caller a", got)
	}
	if got := reqs[len(reqs)-1].Header.Get("X-Workspace-ID"); got != "" {
		t.Fatalf("a user call carries no workspace id, got %q", got)
	}
	// A denied call never reached the agent: 9 allowed + 9 admin calls.
	if len(reqs) != 18 {
		t.Fatalf("agent got %d calls, want 18", len(reqs))
	}
}

func TestA2ACallerIdentity(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	tr := buildTree(t, in)
	a, a1 := tr.ids["a"], tr.ids["a1"]
	cases := []struct {
		name    string
		path    string
		bearer  string
		headers []string
		status  int
	}{
		{"no credential", a2aPath(a1), "", nil, 401},
		{"garbage bearer", a2aPath(a1), "not-a-token", nil, 401},
		{"matching X-Workspace-ID", a2aPath(a1), tr.tokens["a"], []string{"X-Workspace-ID", a.String()}, 200},
		{"spoofed X-Workspace-ID", a2aPath(a1), tr.tokens["b1"], []string{"X-Workspace-ID", a.String()}, 403},
		{"spoofed to an allowed id", a2aPath(a1), tr.tokens["a2"], []string{"X-Workspace-ID", a.String()}, 403},
		{"malformed X-Workspace-ID", a2aPath(a1), tr.tokens["a"], []string{"X-Workspace-ID", "me"}, 403},
		{"admin ignores X-Workspace-ID", a2aPath(a1), in.Admin, []string{"X-Workspace-ID", tr.ids["x"].String()}, 200},
		{"bad id", "/workspaces/not-a-uuid/a2a", tr.tokens["a"], nil, 400},
		{"unknown workspace", a2aPath(uuid.New()), in.Admin, nil, 404},
		{"unknown workspace, agent caller", a2aPath(uuid.New()), tr.tokens["a"], nil, 404},
	}
	for _, c := range cases {
		if r := in.Do("POST", c.path, c.bearer, msg("x"), c.headers...); r.Status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, r.Status, r.Body, c.status)
		}
	}
	// Only the two allowed calls reached the agent.
	if n := len(tr.agent.requests()); n != 2 {
		t.Fatalf("agent got %d calls, want 2", n)
	}
	// A removed workspace is gone for the proxy as soon as the registry
	// invalidates it.
	sqlExec(t, in, a1, `UPDATE workspaces SET status = 'removed' WHERE id = $1`, a1)
	in.App.Server.InvalidateA2ATree()
	if r := in.Do("POST", a2aPath(a1), in.Admin, msg("x")); r.Status != 404 {
		t.Fatalf("removed workspace: %d", r.Status)
	}
}

func TestA2ARequestAndAnswerShapes(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	agent := newAgent(t)
	id, tok := in.CreateWorkspaceRow("shapes", nil)
	setURL(t, in, id, agent.URL)

	// A bare body is wrapped; messageId is filled in.
	if r := in.Do("POST", a2aPath(id), tok, msg("wrap me")); r.Status != 200 {
		t.Fatalf("bare: %d %s", r.Status, r.Body)
	}
	got := agent.requests()[0].Body
	params, _ := got["params"].(map[string]any)
	m, _ := params["message"].(map[string]any)
	if got["jsonrpc"] != "2.0" || got["method"] != "message/send" || len(got["id"].(string)) != 36 || len(m["messageId"].(string)) != 36 {
		t.Fatalf("wrapped request: %v", got)
	}
	// A JSON-RPC body passes byte for byte.
	full := `{"jsonrpc":"2.0","id":"req-9","method":"tasks/get","params":{"id":"t1"}}`
	if r := in.Do("POST", a2aPath(id), tok, full); r.Status != 200 {
		t.Fatalf("jsonrpc: %d", r.Status)
	}
	if raw := agent.requests()[1].Raw; string(raw) != full {
		t.Fatalf("passthrough changed the body: %s", raw)
	}
	// The agent's answer comes back as it came: status, type and bytes.
	answer := []byte(`{"jsonrpc":"2.0","id":"req-9","error":{"code":-32601,"message":"Method not found"}}` + "\n  ")
	agent.setHandler(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(404)
		_, _ = w.Write(answer)
		return true
	})
	r := in.Do("POST", a2aPath(id), tok, full)
	if r.Status != 404 || !bytes.Equal(r.Body, answer) || r.Header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("answer not passed through: %d %q %q", r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	// An answer over 10 MiB is a 502, not a truncation.
	agent.setHandler(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		_, _ = w.Write([]byte(`{"result":"`))
		_, _ = w.Write(bytes.Repeat([]byte("a"), 10<<20))
		_, _ = w.Write([]byte(`"}`))
		return true
	})
	if r := in.Do("POST", a2aPath(id), tok, msg("big")); r.Status != 502 {
		t.Fatalf("huge answer: %d", r.Status)
	} else if _, code := r.ErrorBody(t); code != "upstream_error" {
		t.Fatalf("huge answer code: %s", r.Body)
	}
	// Exactly 10 MiB is fine.
	agent.setHandler(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		_, _ = w.Write(bytes.Repeat([]byte(" "), 10<<20))
		return true
	})
	if r := in.Do("POST", a2aPath(id), tok, msg("ten")); r.Status != 200 || len(r.Body) != 10<<20 {
		t.Fatalf("10 MiB answer: %d %d", r.Status, len(r.Body))
	}
	agent.setHandler(nil)

	bad := []struct {
		name   string
		body   any
		status int
	}{
		{"malformed", `{"message":`, 400},
		{"not an object", `[1,2]`, 400},
		{"string", `"hello"`, 400},
		{"empty", ``, 400},
		{"trailing data", `{} {}`, 400},
		{"over 1 MiB", `{"x":"` + strings.Repeat("a", 1<<20) + `"}`, 413},
	}
	for _, c := range bad {
		if r := in.Do("POST", a2aPath(id), tok, c.body); r.Status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, r.Status, r.Body, c.status)
		}
	}
	// Just under 1 MiB is accepted.
	under := `{"message":{"parts":[{"kind":"text","text":"` + strings.Repeat("a", 1<<20-200) + `"}]}}`
	if r := in.Do("POST", a2aPath(id), tok, under); r.Status != 200 {
		t.Fatalf("under 1 MiB: %d %s", r.Status, r.Body)
	}

	// No URL: 503 with Retry-After.
	setURL(t, in, id, "")
	r = in.Do("POST", a2aPath(id), tok, msg("anyone?"))
	if e, code := r.ErrorBody(t); r.Status != 503 || e != "workspace agent unavailable" || code != "unavailable" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("no url: %d %s retry=%q", r.Status, r.Body, r.Header.Get("Retry-After"))
	}
	// Nobody listening: 502 upstream_error, no dial text in the answer.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	setURL(t, in, id, dead)
	r = in.Do("POST", a2aPath(id), tok, msg("hello?"))
	if _, code := r.ErrorBody(t); r.Status != 502 || code != "upstream_error" || strings.Contains(string(r.Body), "refused") ||
		strings.Contains(string(r.Body), "127.0.0.1") {
		t.Fatalf("unreachable: %d %s", r.Status, r.Body)
	}
}

// X-Timeout bounds the whole call, and an agent that never answers
// cannot hold the connection past it.
func TestA2ATimeout(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	agent := newAgent(t)
	id, tok := in.CreateWorkspaceRow("slow", nil)
	setURL(t, in, id, agent.URL)
	released := make(chan time.Time, 4)
	agent.setHandler(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		select {
		case <-r.Context().Done(): // the proxy hung up
			released <- time.Now()
		case <-time.After(time.Minute):
		}
		return true
	})
	start := time.Now()
	r := in.Do("POST", a2aPath(id), tok, msg("wait"), "X-Timeout", "0.5")
	took := time.Since(start)
	if e, code := r.ErrorBody(t); r.Status != 504 || code != "upstream_error" || e == "" {
		t.Fatalf("timeout: %d %s", r.Status, r.Body)
	}
	if took < 450*time.Millisecond || took > 5*time.Second {
		t.Fatalf("504 after %v, want about 0.5 s", took)
	}
	select {
	case at := <-released:
		if at.Sub(start) > 5*time.Second {
			t.Fatalf("agent connection held until %v", at.Sub(start))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the proxy kept the agent's connection open past the deadline")
	}
	// A slow but in-time agent answers.
	agent.setHandler(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		time.Sleep(200 * time.Millisecond)
		_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{}}`))
		return true
	})
	if r := in.Do("POST", a2aPath(id), tok, msg("ok"), "X-Timeout", "3"); r.Status != 200 {
		t.Fatalf("in time: %d", r.Status)
	}
	// Values above the maximum are clamped, not refused.
	if r := in.Do("POST", a2aPath(id), tok, msg("ok"), "X-Timeout", "999999"); r.Status != 200 {
		t.Fatalf("clamped timeout: %d", r.Status)
	}
	for _, bad := range []string{"0", "-1", "soon", "NaN", "1s"} {
		if r := in.Do("POST", a2aPath(id), tok, msg("x"), "X-Timeout", bad); r.Status != 400 {
			t.Errorf("X-Timeout %q: %d", bad, r.Status)
		}
	}
}

// The agent-URL policy is applied to the address actually dialed.
func TestA2AAgentURLPolicy(t *testing.T) {
	in := apptest.Start(t, apptest.Options{Env: map[string]string{"MOLECULE_AGENT_NETWORK": "public"}})
	agent := newAgent(t)
	id, tok := in.CreateWorkspaceRow("public-net", nil)
	_, port, _ := net.SplitHostPort(agent.Listener.Addr().String())
	cases := []string{
		"http://localhost:" + port,           // a hostname resolving to loopback: refused at dial
		"http://127.0.0.1:" + port,           // a private literal under the public policy
		"http://169.254.169.254/latest/meta", // cloud metadata
		"http://[::ffff:169.254.169.254]/",   // v4-mapped metadata
		"http://metadata.google.internal/",   // metadata by name
		"ftp://example.com/",                 // not http(s)
	}
	for _, u := range cases {
		setURL(t, in, id, u)
		r := in.Do("POST", a2aPath(id), tok, msg("x"), "X-Timeout", "5")
		if e, code := r.ErrorBody(t); r.Status != 502 || code != "upstream_error" || e != "workspace agent address is not allowed" {
			t.Errorf("%s: %d %s", u, r.Status, r.Body)
		}
	}
	if n := len(agent.requests()); n != 0 {
		t.Fatalf("the agent was reached %d times", n)
	}
	// Metadata is refused under the private policy too, at dial time.
	in2 := apptest.Start(t, apptest.Options{})
	id2, tok2 := in2.CreateWorkspaceRow("private-net", nil)
	setURL(t, in2, id2, "http://169.254.169.254/")
	if r := in2.Do("POST", a2aPath(id2), tok2, msg("x"), "X-Timeout", "5"); r.Status != 502 {
		t.Fatalf("metadata under private policy: %d %s", r.Status, r.Body)
	}
	setURL(t, in2, id2, "http://localhost:"+port)
	if r := in2.Do("POST", a2aPath(id2), tok2, msg("x")); r.Status != 200 {
		t.Fatalf("loopback under private policy: %d %s", r.Status, r.Body)
	}
}

// User calls emit A2A_RESPONSE (broadcast only, never stored).
func TestA2AResponseEvent(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	agent := newAgent(t)
	id, tok := in.CreateWorkspaceRow("evented", nil)
	setURL(t, in, id, agent.URL)
	sub := in.App.Hub.SubscribeWorkspace(id, 16)
	defer sub.Close()
	if r := in.Do("POST", a2aPath(id), in.Admin, msg("for the canvas")); r.Status != 200 {
		t.Fatal(r.Status)
	}
	select {
	case ev := <-sub.C:
		var p struct {
			Method     string          `json:"method"`
			StatusCode int             `json:"status_code"`
			Response   json.RawMessage `json:"response"`
		}
		_ = json.Unmarshal(ev.Payload, &p)
		if ev.Type != "A2A_RESPONSE" || p.Method != "message/send" || p.StatusCode != 200 || !bytes.Contains(p.Response, []byte("for the canvas")) {
			t.Fatalf("event: %s %s", ev.Type, ev.Payload)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no A2A_RESPONSE")
	}
	// An agent-to-agent call emits none.
	if r := in.Do("POST", a2aPath(id), tok, msg("quiet")); r.Status != 200 {
		t.Fatal(r.Status)
	}
	select {
	case ev := <-sub.C:
		t.Fatalf("agent call emitted %s", ev.Type)
	case <-time.After(300 * time.Millisecond):
	}
	if n := kit.Count(t, in.App.Store.DB, "events", "event_type = 'A2A_RESPONSE'"); n != 0 {
		t.Fatalf("A2A_RESPONSE stored %d times", n)
	}
}
