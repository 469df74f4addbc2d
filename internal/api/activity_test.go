package api_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/apptest"
	"github.com/moleculesai/molecule/internal/apptest/kit"
	"github.com/moleculesai/molecule/internal/store"
)

func listActivity(t *testing.T, in *apptest.Instance, ws uuid.UUID, query string) []store.Activity {
	t.Helper()
	return kit.As[[]store.Activity](t, in.Do("GET", "/workspaces/"+ws.String()+"/activity"+query, in.Admin, nil), 200)
}

// Every proxied call lands in both workspaces' logs: caller, target,
// method, status, duration.
func TestActivityRecordsCalls(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	tr := buildTree(t, in)
	a, a1, b1 := tr.ids["a"], tr.ids["a1"], tr.ids["b1"]
	if r := in.Do("POST", a2aPath(a1), tr.tokens["a"], `{"method":"message/send","params":{"message":{"parts":[]}}}`); r.Status != 200 {
		t.Fatal(r.Status)
	}
	if r := in.Do("POST", a2aPath(a1), tr.tokens["b1"], msg("let me in")); r.Status != 403 {
		t.Fatal(r.Status)
	}
	if r := in.Do("POST", a2aPath(a1), in.Admin, msg("user")); r.Status != 200 {
		t.Fatal(r.Status)
	}
	// A method the log cannot hold as is (NUL, invalid UTF-8) is cleaned,
	// never a reason to lose the batch.
	if r := in.Do("POST", a2aPath(a1), tr.tokens["a"], "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\\u0000y\xff\"}"); r.Status != 200 {
		t.Fatal(r.Status)
	}
	kit.Eventually(t, "activity rows", func() bool { return len(listActivity(t, in, a1, "")) == 4 })
	if odd := listActivity(t, in, a1, "?limit=1")[0]; odd.Method != "xy\uFFFD" {
		t.Fatalf("cleaned method: %q", odd.Method)
	}
	sqlExec(t, in, a1, `DELETE FROM activity_log WHERE method LIKE 'xy%' AND target_id = $1`, a1)
	rows := listActivity(t, in, a1, "")
	// Newest first: the user's call, the denied cousin, the parent.
	user, denied, parent := rows[0], rows[1], rows[2]
	if user.ActivityType != "a2a_receive" || user.CallerID != nil || *user.StatusCode != 200 || user.Method != "message/send" {
		t.Fatalf("user call: %+v", user)
	}
	if denied.CallerID == nil || *denied.CallerID != b1 || *denied.StatusCode != 403 {
		t.Fatalf("denied call: %+v", denied)
	}
	if parent.CallerID == nil || *parent.CallerID != a || *parent.TargetID != a1 || *parent.StatusCode != 200 ||
		parent.DurationMS == nil || *parent.DurationMS < 0 {
		t.Fatalf("parent call: %+v", parent)
	}
	sent := listActivity(t, in, a, "?type=a2a_send")
	if len(sent) != 1 || *sent[0].TargetID != a1 || *sent[0].CallerID != a {
		t.Fatalf("caller's log: %+v", sent)
	}
	if got := listActivity(t, in, a1, "?type=a2a_send"); len(got) != 0 {
		t.Fatalf("type filter: %+v", got)
	}
	if got := listActivity(t, in, a1, "?limit=1"); len(got) != 1 || got[0].ID != user.ID {
		t.Fatalf("limit: %+v", got)
	}
	if got := listActivity(t, in, a1, "?limit=1&offset=2"); len(got) != 1 || got[0].ID != parent.ID {
		t.Fatalf("offset: %+v", got)
	}
}

func TestActivityReportAndInputs(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	id, tok := in.CreateWorkspaceRow("reporter", nil)
	_, other := in.CreateWorkspaceRow("other", nil)
	apath := "/workspaces/" + id.String() + "/activity"
	sub := in.App.Hub.SubscribeWorkspace(id, 8)
	defer sub.Close()

	r := in.Do("POST", apath, tok, map[string]any{"activity_type": "task_complete", "summary": "wrote tests",
		"files": []string{"a_test.go"}, "tokens": 12, "note": "ünïcode \u2603"})
	if r.Status != 201 {
		t.Fatalf("report: %d %s", r.Status, r.Body)
	}
	var a store.Activity
	r.JSON(t, &a)
	if a.ID == 0 || a.ActivityType != "task_complete" || a.Summary != "wrote tests" || a.WorkspaceID != id ||
		!strings.Contains(string(a.Details), `"files":["a_test.go"]`) || !strings.Contains(string(a.Details), "☃") {
		t.Fatalf("stored: %s", r.Body)
	}
	if ev := <-sub.C; ev.Type != "ACTIVITY_LOGGED" {
		t.Fatalf("event %s", ev.Type)
	}
	got := listActivity(t, in, id, "?type=task_complete")
	if len(got) != 1 || got[0].ID != a.ID {
		t.Fatalf("listed: %+v", got)
	}
	cases := []struct {
		name   string
		method string
		path   string
		bearer string
		body   any
		status int
	}{
		{"no credential", "POST", apath, "", map[string]any{"activity_type": "x"}, 401},
		{"another workspace", "POST", apath, other, map[string]any{"activity_type": "x"}, 403},
		{"bad id", "POST", "/workspaces/1/activity", tok, map[string]any{"activity_type": "x"}, 400},
		{"unknown workspace", "POST", "/workspaces/" + uuid.NewString() + "/activity", in.Admin, map[string]any{"activity_type": "x"}, 404},
		{"missing type", "POST", apath, tok, map[string]any{"summary": "x"}, 400},
		{"type wrong kind", "POST", apath, tok, map[string]any{"activity_type": 5}, 400},
		{"type with spaces", "POST", apath, tok, map[string]any{"activity_type": "a b"}, 400},
		{"type too long", "POST", apath, tok, map[string]any{"activity_type": strings.Repeat("a", 65)}, 400},
		{"forged a2a call", "POST", apath, tok, map[string]any{"activity_type": "a2a_receive"}, 400},
		{"forged delegation", "POST", apath, tok, map[string]any{"activity_type": "delegation"}, 400},
		{"summary wrong kind", "POST", apath, tok, map[string]any{"activity_type": "x", "summary": 1}, 400},
		{"NUL in summary", "POST", apath, tok, map[string]any{"activity_type": "x", "summary": "a\x00"}, 400},
		{"NUL in details", "POST", apath, tok, map[string]any{"activity_type": "x", "data": "a\x00"}, 400},
		{"NUL in a nested key", "POST", apath, tok, `{"activity_type":"x","d":{"k\u0000":1}}`, 400},
		{"lone surrogate is kept as U+FFFD", "POST", apath, tok, `{"activity_type":"x","d":"\ud800"}`, 201},
		{"summary too long", "POST", apath, tok, map[string]any{"activity_type": "x", "summary": strings.Repeat("s", 4097)}, 400},
		{"malformed", "POST", apath, tok, `{"activity_type":`, 400},
		{"array", "POST", apath, tok, `[]`, 400},
		{"null", "POST", apath, tok, `null`, 400},
		{"over 1 MiB", "POST", apath, tok, `{"activity_type":"x","d":"` + strings.Repeat("a", 1<<20) + `"}`, 413},
		{"admin may report", "POST", apath, in.Admin, map[string]any{"activity_type": "note", "summary": ""}, 201},
		{"list: another workspace", "GET", apath, other, nil, 403},
		{"list: bad limit", "GET", apath + "?limit=abc", tok, nil, 400},
		{"list: bad type", "GET", apath + "?type=%20", tok, nil, 400},
		{"list: limit clamped", "GET", apath + "?limit=100000", tok, nil, 200},
	}
	for _, c := range cases {
		if r := in.Do(c.method, c.path, c.bearer, c.body); r.Status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, r.Status, r.Body, c.status)
		}
	}
}
