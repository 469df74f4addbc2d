package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/apptest"
	"github.com/moleculesai/molecule/internal/apptest/kit"
)

type delegation struct {
	DelegationID  uuid.UUID `json:"delegation_id"`
	TargetID      uuid.UUID `json:"target_id"`
	Status        string    `json:"status"`
	TaskPreview   string    `json:"task_preview"`
	ResultPreview string    `json:"result_preview"`
	Error         string    `json:"error"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

func listDelegations(t *testing.T, in *apptest.Instance, ws uuid.UUID, bearer string) []delegation {
	t.Helper()
	return kit.As[[]delegation](t, in.Do("GET", "/workspaces/"+ws.String()+"/delegations", bearer, nil), 200)
}

func waitDelegation(t *testing.T, in *apptest.Instance, ws uuid.UUID, bearer string, id uuid.UUID) delegation {
	t.Helper()
	var d delegation
	kit.Eventually(t, "delegation to finish", func() bool {
		for _, x := range listDelegations(t, in, ws, bearer) {
			if x.DelegationID == id {
				d = x
				return x.Status == "completed" || x.Status == "failed"
			}
		}
		return false
	})
	return d
}

func TestDelegation(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	tr := buildTree(t, in)
	a1, a2, b1 := tr.ids["a1"], tr.ids["a2"], tr.ids["b1"]
	dpath := "/workspaces/" + a1.String() + "/delegate"

	// Happy path: siblings.
	r := in.Do("POST", dpath, tr.tokens["a1"], map[string]any{"target_id": a2, "task": "write the report"})
	if r.Status != 202 {
		t.Fatalf("delegate: %d %s", r.Status, r.Body)
	}
	var ack struct {
		DelegationID uuid.UUID `json:"delegation_id"`
		Status       string    `json:"status"`
	}
	r.JSON(t, &ack)
	if ack.Status != "delegated" || ack.DelegationID == uuid.Nil {
		t.Fatalf("ack: %s", r.Body)
	}
	d := waitDelegation(t, in, a1, tr.tokens["a1"], ack.DelegationID)
	if d.Status != "completed" || d.ResultPreview != "echo a2: write the report" || d.TaskPreview != "write the report" ||
		d.TargetID != a2 || d.Error != "" {
		t.Fatalf("completed delegation: %+v", d)
	}
	var sent *agentRequest
	for _, req := range tr.agent.requests() {
		if req.Path == "/a2" {
			sent = &req
		}
	}
	if sent == nil || sent.Header.Get("X-Workspace-ID") != a1.String() || sent.Body["method"] != "message/send" {
		t.Fatalf("the target's agent got: %+v", sent)
	}
	kit.Eventually(t, "delegation events", func() bool {
		ev := strings.Join(kit.EventTypes(t, in.App.Store.DB, a1), ",")
		return ev == "DELEGATION_SENT,DELEGATION_COMPLETE"
	})

	// Self-delegation: 400 before any other work (even with a bad task).
	r = in.Do("POST", dpath, tr.tokens["a1"], map[string]any{"target_id": a1, "task": 42})
	if e, _ := r.ErrorBody(t); r.Status != 400 || e != "self-delegation not permitted" {
		t.Fatalf("self: %d %s", r.Status, r.Body)
	}

	// Idempotency: the same key returns the same delegation, sent once.
	before := len(tr.agent.requests())
	body := map[string]any{"target_id": a2, "task": "once only", "idempotency_key": "k-1"}
	r1 := in.Do("POST", dpath, tr.tokens["a1"], body)
	r2 := in.Do("POST", dpath, tr.tokens["a1"], body)
	var ack1, ack2 struct {
		DelegationID uuid.UUID `json:"delegation_id"`
	}
	r1.JSON(t, &ack1)
	r2.JSON(t, &ack2)
	if r1.Status != 202 || r2.Status != 202 || ack1.DelegationID != ack2.DelegationID {
		t.Fatalf("idempotency: %d %s / %d %s", r1.Status, r1.Body, r2.Status, r2.Body)
	}
	waitDelegation(t, in, a1, tr.tokens["a1"], ack1.DelegationID)
	time.Sleep(100 * time.Millisecond)
	if n := len(tr.agent.requests()) - before; n != 1 {
		t.Fatalf("idempotent delegation sent %d times", n)
	}
	// The same key from another workspace is another delegation.
	r3 := in.Do("POST", "/workspaces/"+a2.String()+"/delegate", tr.tokens["a2"], map[string]any{"target_id": a1, "task": "x", "idempotency_key": "k-1"})
	var ack3 struct {
		DelegationID uuid.UUID `json:"delegation_id"`
	}
	r3.JSON(t, &ack3)
	if r3.Status != 202 || ack3.DelegationID == ack1.DelegationID {
		t.Fatalf("key scoped per source: %d %s", r3.Status, r3.Body)
	}

	// A forbidden target (a cousin) is accepted, then fails.
	r = in.Do("POST", dpath, tr.tokens["a1"], map[string]any{"target_id": b1, "task": "not yours"})
	r.JSON(t, &ack)
	if r.Status != 202 {
		t.Fatalf("cousin: %d", r.Status)
	}
	d = waitDelegation(t, in, a1, tr.tokens["a1"], ack.DelegationID)
	if d.Status != "failed" || d.Error != "access denied" {
		t.Fatalf("forbidden delegation: %+v", d)
	}
	for _, req := range tr.agent.requests() {
		if req.Path == "/b1" {
			t.Fatal("a forbidden delegation reached the agent")
		}
	}
	kit.Eventually(t, "failure event", func() bool {
		return strings.HasSuffix(strings.Join(kit.EventTypes(t, in.App.Store.DB, a1), ","), "DELEGATION_FAILED")
	})
	// Over budget fails too.
	sqlExec(t, in, a2, `UPDATE workspaces SET budget_limit = 0 WHERE id = $1`, a2)
	r = in.Do("POST", dpath, tr.tokens["a1"], map[string]any{"target_id": a2, "task": "too pricey"})
	r.JSON(t, &ack)
	if d := waitDelegation(t, in, a1, tr.tokens["a1"], ack.DelegationID); d.Status != "failed" || d.Error != "workspace budget limit exceeded" {
		t.Fatalf("over-budget delegation: %+v", d)
	}
	// An agent's JSON-RPC error fails the delegation with its message.
	sqlExec(t, in, a2, `UPDATE workspaces SET budget_limit = NULL WHERE id = $1`, a2)
	tr.agent.setHandler(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"model overloaded"}}`))
		return true
	})
	r = in.Do("POST", dpath, tr.tokens["a1"], map[string]any{"target_id": a2, "task": "try"})
	r.JSON(t, &ack)
	if d := waitDelegation(t, in, a1, tr.tokens["a1"], ack.DelegationID); d.Status != "failed" || d.Error != "agent error -32000: model overloaded" {
		t.Fatalf("agent error: %+v", d)
	}
	tr.agent.setHandler(nil)

	// Newest first.
	list := listDelegations(t, in, a1, in.Admin)
	for i := 1; i < len(list); i++ {
		if list[i].CreatedAt.After(list[i-1].CreatedAt) {
			t.Fatal("delegations not newest first")
		}
	}
	if len(list) != 5 {
		t.Fatalf("a1 has %d delegations, want 5", len(list))
	}
}

// A client that disconnects right after asking does not cancel the work.
func TestDelegationSurvivesClientDisconnect(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	agent := newAgent(t)
	src, stok := in.CreateWorkspaceRow("src", nil)
	dst, _ := in.CreateWorkspaceRow("dst", nil)
	setURL(t, in, dst, agent.URL)
	gate := make(chan struct{})
	agent.setHandler(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		<-gate
		_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{"kind":"message","parts":[{"kind":"text","text":"late but done"}]}}`))
		return true
	})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", in.URL+"/workspaces/"+src.String()+"/delegate",
		strings.NewReader(`{"target_id":"`+dst.String()+`","task":"long job"}`))
	req.Header.Set("Authorization", "Bearer "+stok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel() // the client is gone
	kit.Eventually(t, "dispatch", func() bool { return len(agent.requests()) == 1 })
	close(gate)
	list := listDelegations(t, in, src, stok)
	d := waitDelegation(t, in, src, stok, list[0].DelegationID)
	if d.Status != "completed" || d.ResultPreview != "late but done" {
		t.Fatalf("after disconnect: %+v", d)
	}
}

func TestDelegationInputs(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	src, stok := in.CreateWorkspaceRow("src", nil)
	dst, dtok := in.CreateWorkspaceRow("dst", nil)
	dpath := "/workspaces/" + src.String() + "/delegate"
	cases := []struct {
		name   string
		path   string
		bearer string
		body   any
		status int
	}{
		{"no credential", dpath, "", map[string]any{"target_id": dst, "task": "t"}, 401},
		{"another workspace's token", dpath, dtok, map[string]any{"target_id": dst, "task": "t"}, 403},
		{"bad path id", "/workspaces/zz/delegate", stok, map[string]any{"target_id": dst, "task": "t"}, 400},
		{"unknown source", "/workspaces/" + uuid.NewString() + "/delegate", in.Admin, map[string]any{"target_id": dst, "task": "t"}, 404},
		{"missing target", dpath, stok, map[string]any{"task": "t"}, 400},
		{"bad target id", dpath, stok, map[string]any{"target_id": "dst", "task": "t"}, 400},
		{"target wrong type", dpath, stok, map[string]any{"target_id": 7, "task": "t"}, 400},
		{"unknown target", dpath, stok, map[string]any{"target_id": uuid.New(), "task": "t"}, 404},
		{"missing task", dpath, stok, map[string]any{"target_id": dst}, 400},
		{"blank task", dpath, stok, map[string]any{"target_id": dst, "task": "  "}, 400},
		{"task wrong type", dpath, stok, map[string]any{"target_id": dst, "task": []string{"a"}}, 400},
		{"NUL in task", dpath, stok, map[string]any{"target_id": dst, "task": "a\x00b"}, 400},
		{"task too long", dpath, stok, map[string]any{"target_id": dst, "task": strings.Repeat("é", 100_001)}, 400},
		{"empty key", dpath, stok, map[string]any{"target_id": dst, "task": "t", "idempotency_key": ""}, 400},
		{"key too long", dpath, stok, map[string]any{"target_id": dst, "task": "t", "idempotency_key": strings.Repeat("k", 256)}, 400},
		{"NUL in key", dpath, stok, map[string]any{"target_id": dst, "task": "t", "idempotency_key": "k\x00"}, 400},
		{"malformed", dpath, stok, `{"target_id":`, 400},
		{"array", dpath, stok, `[]`, 400},
		{"admin may delegate for a workspace", dpath, in.Admin, map[string]any{"target_id": dst, "task": "t"}, 202},
	}
	for _, c := range cases {
		if r := in.Do("POST", c.path, c.bearer, c.body); r.Status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, r.Status, r.Body, c.status)
		}
	}
	for _, c := range []struct {
		path, bearer string
		status       int
	}{
		{"/workspaces/" + src.String() + "/delegations?limit=-1", stok, 400},
		{"/workspaces/" + src.String() + "/delegations?offset=x", stok, 400},
		{"/workspaces/" + src.String() + "/delegations", dtok, 403},
		{"/workspaces/" + uuid.NewString() + "/delegations", in.Admin, 404},
	} {
		if r := in.Do("GET", c.path, c.bearer, nil); r.Status != c.status {
			t.Errorf("GET %s: %d, want %d", c.path, r.Status, c.status)
		}
	}
	// The one accepted delegation fails: dst has no URL.
	list := listDelegations(t, in, src, stok)
	if len(list) != 1 {
		t.Fatalf("%d delegations", len(list))
	}
	if d := waitDelegation(t, in, src, stok, list[0].DelegationID); d.Status != "failed" || d.Error != "workspace agent unavailable" {
		t.Fatalf("no-url delegation: %+v", d)
	}
}
