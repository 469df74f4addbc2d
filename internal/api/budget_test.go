package api_test

import (
	"math"
	"testing"
	"time"

	"github.com/moleculesai/molecule/internal/apptest"
	"github.com/moleculesai/molecule/internal/apptest/kit"
)

type budget struct {
	BudgetLimit     *int64 `json:"budget_limit"`
	MonthlySpend    int64  `json:"monthly_spend"`
	BudgetRemaining *int64 `json:"budget_remaining"`
}

func TestBudgetFromReportedSpend(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	agent := newAgent(t)
	caller, ctok := in.CreateWorkspaceRow("caller", nil)
	target, ttok := in.CreateWorkspaceRow("target", nil)
	_ = caller
	setURL(t, in, target, agent.URL)
	bpath := "/workspaces/" + target.String() + "/budget"

	b := kit.As[budget](t, in.Do("GET", bpath, ttok, nil), 200)
	if b.BudgetLimit != nil || b.MonthlySpend != 0 || b.BudgetRemaining != nil {
		t.Fatalf("fresh budget: %+v", b)
	}
	r := in.Do("PATCH", bpath, in.Admin, map[string]any{"budget_limit": 500})
	if r.Status != 200 {
		t.Fatalf("patch: %d %s", r.Status, r.Body)
	}
	r.JSON(t, &b)
	if b.BudgetLimit == nil || *b.BudgetLimit != 500 || *b.BudgetRemaining != 500 {
		t.Fatalf("patch echo: %+v", b)
	}
	if r := in.Do("POST", a2aPath(target), ctok, msg("under budget")); r.Status != 200 {
		t.Fatalf("under budget: %d", r.Status)
	}
	// The agent reports it spent the limit (heartbeat writes monthly_spend).
	sqlExec(t, in, target, `UPDATE workspaces SET monthly_spend = 500 WHERE id = $1`, target)
	r = in.Do("POST", a2aPath(target), ctok, msg("over"))
	if r.Status != 402 || string(r.Body) != `{"code":"budget_exceeded","error":"workspace budget limit exceeded"}` {
		t.Fatalf("over budget: %d %s", r.Status, r.Body)
	}
	// The user is held to the budget too.
	if r := in.Do("POST", a2aPath(target), in.Admin, msg("over")); r.Status != 402 {
		t.Fatalf("admin over budget: %d", r.Status)
	}
	b = kit.As[budget](t, in.Do("GET", bpath, ttok, nil), 200)
	if b.MonthlySpend != 500 || *b.BudgetRemaining != 0 {
		t.Fatalf("at limit: %+v", b)
	}
	// Raising the limit applies to the very next call.
	if r := in.Do("PATCH", bpath, in.Admin, map[string]any{"budget_limit": 501}); r.Status != 200 {
		t.Fatal(r.Status)
	}
	if r := in.Do("POST", a2aPath(target), ctok, msg("again")); r.Status != 200 {
		t.Fatalf("after raise: %d %s", r.Status, r.Body)
	}
	// Lowering it applies at once too; clearing it lifts the ceiling.
	if r := in.Do("PATCH", bpath, in.Admin, map[string]any{"budget_limit": 0}); r.Status != 200 {
		t.Fatal(r.Status)
	}
	if r := in.Do("POST", a2aPath(target), ctok, msg("zero")); r.Status != 402 {
		t.Fatalf("after lowering to 0: %d", r.Status)
	}
	r = in.Do("PATCH", bpath, in.Admin, `{"budget_limit":null}`)
	r.JSON(t, &b)
	if r.Status != 200 || b.BudgetLimit != nil || b.BudgetRemaining != nil || b.MonthlySpend != 500 {
		t.Fatalf("clear: %d %s", r.Status, r.Body)
	}
	if r := in.Do("POST", a2aPath(target), ctok, msg("free")); r.Status != 200 {
		t.Fatalf("after clear: %d", r.Status)
	}
	// Over budget shows a negative remainder.
	sqlExec(t, in, target, `UPDATE workspaces SET budget_limit = 100 WHERE id = $1`, target)
	if b := kit.As[budget](t, in.Do("GET", bpath, in.Admin, nil), 200); *b.BudgetRemaining != -400 {
		t.Fatalf("negative remainder: %+v", b)
	}
}

func TestBudgetInputs(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	id, tok := in.CreateWorkspaceRow("w", nil)
	_, other := in.CreateWorkspaceRow("other", nil)
	bpath := "/workspaces/" + id.String() + "/budget"
	cases := []struct {
		name   string
		method string
		path   string
		bearer string
		body   any
		status int
	}{
		{"own token may read", "GET", bpath, tok, nil, 200},
		{"another workspace may not read", "GET", bpath, other, nil, 403},
		{"no credential", "GET", bpath, "", nil, 401},
		{"bad id", "GET", "/workspaces/xyz/budget", in.Admin, nil, 400},
		{"unknown workspace", "GET", "/workspaces/00000000-0000-0000-0000-000000000001/budget", in.Admin, nil, 404},
		{"a workspace can never set its own ceiling", "PATCH", bpath, tok, map[string]any{"budget_limit": 1 << 40}, 403},
		{"nor clear it", "PATCH", bpath, tok, `{"budget_limit":null}`, 403},
		{"negative", "PATCH", bpath, in.Admin, map[string]any{"budget_limit": -1}, 400},
		{"fraction", "PATCH", bpath, in.Admin, `{"budget_limit":1.5}`, 400},
		{"string", "PATCH", bpath, in.Admin, `{"budget_limit":"100"}`, 400},
		{"bool", "PATCH", bpath, in.Admin, `{"budget_limit":true}`, 400},
		{"too large", "PATCH", bpath, in.Admin, map[string]any{"budget_limit": int64(math.MaxInt64)}, 400},
		{"beyond int64", "PATCH", bpath, in.Admin, `{"budget_limit":99999999999999999999999}`, 400},
		{"missing field", "PATCH", bpath, in.Admin, `{}`, 400},
		{"malformed", "PATCH", bpath, in.Admin, `{"budget_limit":`, 400},
		{"array", "PATCH", bpath, in.Admin, `[]`, 400},
		{"empty", "PATCH", bpath, in.Admin, ``, 400},
		{"unknown workspace patch", "PATCH", "/workspaces/00000000-0000-0000-0000-000000000001/budget", in.Admin, map[string]any{"budget_limit": 1}, 404},
		{"max allowed", "PATCH", bpath, in.Admin, map[string]any{"budget_limit": 1_000_000_000_000}, 200},
	}
	for _, c := range cases {
		if r := in.Do(c.method, c.path, c.bearer, c.body); r.Status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, r.Status, r.Body, c.status)
		}
	}
}

// Two replicas on one database: a change made through one applies on it
// at once and on the other within about a second (the caches' TTL).
func TestA2ACachesConvergeAcrossReplicas(t *testing.T) {
	one := apptest.Start(t, apptest.Options{})
	two := apptest.Start(t, apptest.Options{DSN: one.DSN})
	agent := newAgent(t)
	id, tok := one.CreateWorkspaceRow("shared", nil)
	setURL(t, one, id, agent.URL)
	bpath := "/workspaces/" + id.String() + "/budget"
	for _, in := range []*apptest.Instance{one, two} {
		if r := in.Do("POST", a2aPath(id), tok, msg("warm")); r.Status != 200 {
			t.Fatalf("warm-up: %d", r.Status)
		}
	}
	if r := one.Do("PATCH", bpath, one.Admin, map[string]any{"budget_limit": 0}); r.Status != 200 {
		t.Fatal(r.Status)
	}
	changed := time.Now()
	if r := one.Do("POST", a2aPath(id), tok, msg("x")); r.Status != 402 {
		t.Fatalf("same replica: %d, want 402 at once", r.Status)
	}
	for {
		r := two.Do("POST", a2aPath(id), tok, msg("x"))
		if r.Status == 402 {
			break
		}
		if time.Since(changed) > 1500*time.Millisecond {
			t.Fatalf("other replica still answers %d after %v", r.Status, time.Since(changed))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A new URL on one replica reaches the other within the TTL as well.
	agent2 := newAgent(t)
	sqlExec(t, one, id, `UPDATE workspaces SET url = $2, budget_limit = NULL WHERE id = $1`, id, agent2.URL)
	changed = time.Now()
	for len(agent2.requests()) == 0 {
		two.Do("POST", a2aPath(id), tok, msg("where are you"))
		if time.Since(changed) > 1500*time.Millisecond {
			t.Fatal("other replica never used the new URL")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The registry's changes reach the proxy at once on this replica: a
// re-registered URL and a reported monthly_spend.
func TestA2AFollowsRegistryAtOnce(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	old, fresh := newAgent(t), newAgent(t)
	id, tok := in.CreateWorkspaceRow("moving", nil)
	card := map[string]any{"name": "moving"}
	reg := func(url string) {
		t.Helper()
		if r := in.Do("POST", "/registry/register", tok, map[string]any{"id": id, "url": url, "agent_card": card}); r.Status != 200 {
			t.Fatalf("register: %d %s", r.Status, r.Body)
		}
	}
	reg(old.URL)
	if r := in.Do("POST", a2aPath(id), tok, msg("1")); r.Status != 200 || len(old.requests()) != 1 {
		t.Fatalf("first: %d", r.Status)
	}
	reg(fresh.URL)
	if r := in.Do("POST", a2aPath(id), tok, msg("2")); r.Status != 200 || len(fresh.requests()) != 1 {
		t.Fatalf("after re-register: %d, new agent got %d", r.Status, len(fresh.requests()))
	}
	if r := in.Do("PATCH", "/workspaces/"+id.String()+"/budget", in.Admin, map[string]any{"budget_limit": 1000}); r.Status != 200 {
		t.Fatal(r.Status)
	}
	if r := in.Do("POST", "/registry/heartbeat", tok, map[string]any{"workspace_id": id, "error_rate": 0,
		"active_tasks": 0, "uptime_seconds": 5, "monthly_spend": 1000}); r.Status != 200 {
		t.Fatalf("heartbeat: %d %s", r.Status, r.Body)
	}
	if r := in.Do("POST", a2aPath(id), tok, msg("3")); r.Status != 402 {
		t.Fatalf("after reported spend: %d", r.Status)
	}
}
