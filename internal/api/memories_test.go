package api_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/apptest"
)

type memRow struct {
	ID          string `json:"id"`
	WorkspaceID string `json:"workspace_id"`
	Content     string `json:"content"`
	Scope       string `json:"scope"`
	Namespace   string `json:"namespace"`
	Redacted    bool   `json:"redacted"`
}

func contents(rows []memRow) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.Content
	}
	return out
}

func TestAgentMemories(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	root, tokRoot := in.CreateWorkspaceRow("root", nil)
	a, tokA := in.CreateWorkspaceRow("a", &root)
	s, tokS := in.CreateWorkspaceRow("sibling", &root)
	x, tokX := in.CreateWorkspaceRow("child of a", &a)
	root2, _ := in.CreateWorkspaceRow("root2", nil)
	y, tokY := in.CreateWorkspaceRow("y", &root2)

	commit := func(ws uuid.UUID, tok string, body any) memRow {
		t.Helper()
		r := in.Do("POST", "/workspaces/"+ws.String()+"/memories", tok, body)
		expectStatus(t, r, 201, fmt.Sprint("commit ", body))
		var m memRow
		r.JSON(t, &m)
		return m
	}
	search := func(ws uuid.UUID, tok, query string) []memRow {
		t.Helper()
		r := in.Do("GET", "/workspaces/"+ws.String()+"/memories?"+query, tok, nil)
		expectStatus(t, r, 200, "search "+query)
		var rows []memRow
		r.JSON(t, &rows)
		return rows
	}

	local := commit(a, tokA, map[string]any{"content": "alpha private scratch"})
	if local.Scope != "LOCAL" || local.Namespace != "general" || local.WorkspaceID != a.String() {
		t.Fatalf("defaults: %+v", local)
	}
	commit(a, tokA, map[string]any{"content": "the team deploys on fridays", "scope": "TEAM", "namespace": "ops"})
	expectStatus(t, in.Do("POST", "/workspaces/"+a.String()+"/memories", tokA,
		map[string]any{"content": "x", "scope": "GLOBAL"}), 403, "GLOBAL from a child")
	commit(root, tokRoot, map[string]any{"content": "company policy: be kind", "scope": "GLOBAL"})
	commit(y, tokY, map[string]any{"content": "other team secret plan", "scope": "TEAM"})
	commit(x, tokX, map[string]any{"content": "x reports deploys done", "scope": "team"})

	sec := commit(a, tokA, map[string]any{"content": "use OPENAI_API_KEY=sk-abcdefghijklmnop1234 with header Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc and GITHUB_TOKEN: ghp_abcdefghijklmnopqrstuvwxyz"})
	if !sec.Redacted || strings.Contains(sec.Content, "sk-abc") || strings.Contains(sec.Content, "eyJhbGci") ||
		strings.Contains(sec.Content, "ghp_") || !strings.Contains(sec.Content, "OPENAI_API_KEY=[REDACTED]") ||
		!strings.Contains(sec.Content, "Bearer [REDACTED]") {
		t.Fatalf("not redacted: %+v", sec)
	}
	var stored string
	if err := in.App.Store.DB.QueryRow(`SELECT content FROM agent_memories WHERE id = $1`, sec.ID).Scan(&stored); err != nil || stored != sec.Content {
		t.Fatalf("stored %q %v", stored, err)
	}

	// The sibling sees a's TEAM memory and the GLOBAL one, never a's LOCAL
	// ones, its nephew's (CanCommunicate denies uncle ↔ nephew) or another
	// tree's TEAM memory.
	got := strings.Join(contents(search(s, tokS, "")), "|")
	if !strings.Contains(got, "fridays") || !strings.Contains(got, "be kind") || strings.Contains(got, "x reports") ||
		strings.Contains(got, "alpha private") || strings.Contains(got, "other team") {
		t.Fatalf("sibling sees %q", got)
	}
	// a's team includes its own child x, and x's includes its parent a.
	if got := strings.Join(contents(search(a, tokA, "scope=TEAM")), "|"); got != "x reports deploys done|the team deploys on fridays" {
		t.Fatalf("a TEAM sees %q", got)
	}
	if got := strings.Join(contents(search(x, tokX, "scope=TEAM")), "|"); got != "x reports deploys done|the team deploys on fridays" {
		t.Fatalf("x TEAM sees %q", got)
	}
	// y (another tree) sees its own TEAM memory and the GLOBAL one only.
	got = strings.Join(contents(search(y, tokY, "")), "|")
	if got != "other team secret plan|company policy: be kind" && got != "company policy: be kind|other team secret plan" {
		t.Fatalf("y sees %q", got)
	}
	// a sees its own memories of every scope, newest first.
	rows := search(a, tokA, "scope=LOCAL")
	if len(rows) != 2 || rows[0].ID != sec.ID || rows[1].ID != local.ID {
		t.Fatalf("a LOCAL: %v", contents(rows))
	}
	if rows := search(a, tokA, "scope=GLOBAL"); len(rows) != 1 || rows[0].Content != "company policy: be kind" {
		t.Fatalf("GLOBAL: %v", contents(rows))
	}
	if rows := search(s, tokS, "scope=TEAM&namespace=ops"); len(rows) != 1 || rows[0].Content != "the team deploys on fridays" {
		t.Fatalf("TEAM ops: %v", contents(rows))
	}
	// Full-text search: stemming finds "deploys" from "deploy".
	rows = search(a, tokA, "q="+url.QueryEscape("deploy"))
	if len(rows) != 2 {
		t.Fatalf("fts deploy: %v", contents(rows))
	}
	if rows := search(s, tokS, "q="+url.QueryEscape(`"be kind" -cruel`)); len(rows) != 1 {
		t.Fatalf("fts phrase: %v", contents(rows))
	}
	if rows := search(s, tokS, "q="+url.QueryEscape("nothing-matches-this")); len(rows) != 0 {
		t.Fatalf("fts none: %v", contents(rows))
	}

	// limit: default 50, clamped to 50.
	for i := 0; i < 55; i++ {
		commit(s, tokS, map[string]any{"content": fmt.Sprintf("note %d", i), "namespace": "bulk"})
	}
	if rows := search(s, tokS, "namespace=bulk"); len(rows) != 50 {
		t.Fatalf("default limit: %d", len(rows))
	}
	if rows := search(s, tokS, "namespace=bulk&limit=500"); len(rows) != 50 {
		t.Fatalf("clamped limit: %d", len(rows))
	}
	if rows := search(s, tokS, "namespace=bulk&limit=3"); len(rows) != 3 || rows[0].Content != "note 54" {
		t.Fatalf("limit 3: %v", contents(rows))
	}

	// Delete: own memory only.
	base := "/workspaces/" + a.String() + "/memories/"
	expectStatus(t, in.Do("DELETE", "/workspaces/"+s.String()+"/memories/"+local.ID, tokS, nil), 404, "delete another's memory")
	expectStatus(t, in.Do("DELETE", base+local.ID, tokS, nil), 403, "wrong token")
	expectStatus(t, in.Do("DELETE", base+local.ID, tokA, nil), 200, "delete own")
	expectStatus(t, in.Do("DELETE", base+local.ID, tokA, nil), 404, "delete again")
	expectStatus(t, in.Do("DELETE", base+"nope", tokA, nil), 400, "bad memory id")

	post := "/workspaces/" + a.String() + "/memories"
	bad := []struct {
		name, body string
		status     int
	}{
		{"malformed", `{"content":`, 400},
		{"wrong type", `{"content":5}`, 400},
		{"missing content", `{"scope":"LOCAL"}`, 400},
		{"blank content", `{"content":"   "}`, 400},
		{"NUL content", `{"content":"a\u0000b"}`, 400},
		{"bad scope", `{"content":"c","scope":"WORLD"}`, 400},
		{"long namespace", `{"content":"c","namespace":"` + strings.Repeat("n", 51) + `"}`, 400},
		{"NUL namespace", `{"content":"c","namespace":"a\u0000"}`, 400},
		{"over the cap", `{"content":"` + strings.Repeat("x", 1<<20) + `"}`, 413},
	}
	for _, c := range bad {
		expectStatus(t, in.Do("POST", post, tokA, c.body), c.status, c.name)
	}
	for _, q := range []string{"limit=-1", "limit=x", "scope=bogus", "q=a%00b", "namespace=" + strings.Repeat("n", 51), "offset=-2"} {
		expectStatus(t, in.Do("GET", post+"?"+q, tokA, nil), 400, q)
	}
	expectStatus(t, in.Do("GET", post, "", nil), 401, "no token")
	expectStatus(t, in.Do("GET", post, tokY, nil), 403, "other workspace token")
	expectStatus(t, in.Do("GET", "/workspaces/"+uuid.NewString()+"/memories", in.Admin, nil), 404, "unknown workspace")
}
