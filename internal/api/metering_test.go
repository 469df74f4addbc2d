package api_test

import (
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/moleculesai/molecule/internal/apptest"
	"github.com/moleculesai/molecule/internal/apptest/kit"
)

type metrics struct {
	InputTokens  int64     `json:"input_tokens"`
	OutputTokens int64     `json:"output_tokens"`
	TotalCalls   int64     `json:"total_calls"`
	Cost         string    `json:"estimated_cost_usd"`
	PeriodStart  time.Time `json:"period_start"`
	PeriodEnd    time.Time `json:"period_end"`
}

func TestMeteringSumsAndClamps(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	agent := newAgent(t)
	id, tok := in.CreateWorkspaceRow("metered", nil)
	setURL(t, in, id, agent.URL)
	mpath := "/workspaces/" + id.String() + "/metrics"

	m := kit.As[metrics](t, in.Do("GET", mpath, in.Admin, nil), 200)
	if m.Cost != "0.000000" || m.TotalCalls != 0 || m.InputTokens != 0 {
		t.Fatalf("empty metrics: %+v", m)
	}
	day := time.Now().UTC().Truncate(24 * time.Hour)
	if !m.PeriodStart.Equal(day) || !m.PeriodEnd.Equal(day.Add(24*time.Hour)) {
		t.Fatalf("period: %v – %v", m.PeriodStart, m.PeriodEnd)
	}
	usages := []map[string]any{
		{"input_tokens": 100, "output_tokens": 20},
		{"input_tokens": int64(math.MaxInt64), "output_tokens": -5}, // clamped to 10M and 0
		nil, // no usage: still a call
		{"input_tokens": -1e30, "output_tokens": 1e300},
		{"input_tokens": "12", "output_tokens": 10_000_001},
	}
	for _, u := range usages {
		agent.setUsage(u)
		if r := in.Do("POST", a2aPath(id), tok, msg("count me")); r.Status != 200 {
			t.Fatalf("call: %d", r.Status)
		}
	}
	// A failed answer is not metered.
	agent.setHandler(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		w.WriteHeader(500)
		_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{"usage":{"input_tokens":5}}}`))
		return true
	})
	if r := in.Do("POST", a2aPath(id), tok, msg("fail")); r.Status != 500 {
		t.Fatalf("failing agent: %d", r.Status)
	}
	wantIn := int64(100 + 10_000_000)
	wantOut := int64(20 + 10_000_000 + 10_000_000)
	kit.Eventually(t, "metered calls", func() bool { return kit.As[metrics](t, in.Do("GET", mpath, in.Admin, nil), 200).TotalCalls == 5 })
	m = kit.As[metrics](t, in.Do("GET", mpath, in.Admin, nil), 200)
	// $3 / $15 per million: 10,000,100 × 3 + 20,000,020 × 15 µ$.
	if m.InputTokens != wantIn || m.OutputTokens != wantOut || m.Cost != "330.000600" {
		t.Fatalf("day metrics: %+v, want in=%d out=%d cost=330.000600", m, wantIn, wantOut)
	}
	month := kit.As[metrics](t, in.Do("GET", mpath+"?period=month", in.Admin, nil), 200)
	first := time.Date(day.Year(), day.Month(), 1, 0, 0, 0, 0, time.UTC)
	if month.TotalCalls != 5 || month.Cost != m.Cost || !month.PeriodStart.Equal(first) || !month.PeriodEnd.Equal(first.AddDate(0, 1, 0)) {
		t.Fatalf("month metrics: %+v", month)
	}
	// Days before this month do not count toward the month; earlier days of
	// it do.
	sqlExec(t, in, id, `INSERT INTO workspace_token_usage (workspace_id, day, input_tokens, output_tokens, call_count, estimated_cost_usd)
		VALUES ($1, $2::date - 1, 1, 1, 1, 1.5), ($1, $3::date - 1, 1, 1, 1, 0.25)`, id, first.Format(time.DateOnly), day.Format(time.DateOnly))
	month = kit.As[metrics](t, in.Do("GET", mpath+"?period=month", in.Admin, nil), 200)
	wantCalls, wantCost := int64(5), "330.000600"
	if day.Day() != 1 { // yesterday is in this month
		wantCalls, wantCost = 6, "330.250600"
	}
	if month.TotalCalls != wantCalls || month.Cost != wantCost {
		t.Fatalf("month with history: %+v", month)
	}

	_, other := in.CreateWorkspaceRow("other", nil)
	for _, c := range []struct {
		path, bearer string
		status       int
	}{
		{mpath + "?period=year", in.Admin, 400},
		{mpath + "?period=", in.Admin, 200},
		{mpath, tok, 200},
		{mpath, other, 403},
		{mpath, "", 401},
		{"/workspaces/00000000-0000-0000-0000-000000000009/metrics", in.Admin, 404},
		{"/workspaces/nope/metrics", in.Admin, 400},
	} {
		if r := in.Do("GET", c.path, c.bearer, nil); r.Status != c.status {
			t.Errorf("GET %s: %d, want %d", c.path, r.Status, c.status)
		}
	}
}

// A budget is not inert for an agent that never reports spend: the
// platform's metered cost counts, and raising the limit recovers.
func TestBudgetFromMeteredSpend(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	agent := newAgent(t)
	id, tok := in.CreateWorkspaceRow("spender", nil)
	setURL(t, in, id, agent.URL)
	bpath := "/workspaces/" + id.String() + "/budget"
	// Each call: 10M in + 10M out = $30 + $150 = 18,000 cents.
	agent.setUsage(map[string]any{"input_tokens": 10_000_000, "output_tokens": 10_000_000})
	if r := in.Do("PATCH", bpath, in.Admin, map[string]any{"budget_limit": 30_000}); r.Status != 200 {
		t.Fatal(r.Status)
	}
	for i := range 2 {
		if r := in.Do("POST", a2aPath(id), tok, msg("spend")); r.Status != 200 {
			t.Fatalf("call %d: %d %s", i, r.Status, r.Body)
		}
		want := int64(18_000 * (i + 1))
		kit.Eventually(t, "metered spend", func() bool { return kit.As[budget](t, in.Do("GET", bpath, tok, nil), 200).MonthlySpend == want })
	}
	r := in.Do("POST", a2aPath(id), tok, msg("one more"))
	if r.Status != 402 {
		t.Fatalf("metered over budget: %d %s", r.Status, r.Body)
	}
	if b := kit.As[budget](t, in.Do("GET", bpath, tok, nil), 200); *b.BudgetRemaining != -6_000 {
		t.Fatalf("remaining: %+v", b)
	}
	if r := in.Do("PATCH", bpath, in.Admin, map[string]any{"budget_limit": 100_000}); r.Status != 200 {
		t.Fatal(r.Status)
	}
	if r := in.Do("POST", a2aPath(id), tok, msg("recovered")); r.Status != 200 {
		t.Fatalf("after raising: %d", r.Status)
	}
}
