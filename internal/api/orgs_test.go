package api

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	"gopkg.in/yaml.v3"

	"github.com/moleculesai/molecule/internal/apptest/kit"
	"github.com/moleculesai/molecule/internal/auth"
	"github.com/moleculesai/molecule/internal/orgtemplate"
	"github.com/moleculesai/molecule/internal/provisioner"
	"github.com/moleculesai/molecule/internal/provisioner/provisionertest"
	"github.com/moleculesai/molecule/internal/store"
)

func write(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// brokenTemplates lays out one org template per failure under a fresh
// templates root and returns the root.
func brokenTemplates(t *testing.T) string {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "templates")
	write(t, filepath.Join(base, "outside.yaml"), "name: Outside\n")
	ws := func(dir, body string) {
		write(t, filepath.Join(root, dir, "org.yaml"), "name: "+dir+"\nworkspaces:\n"+body)
	}

	ws("traversal", "  - !include ../../outside.yaml\n")
	ws("absolute", "  - !include /etc/passwd\n")
	ws("symlink", "  - !include link.yaml\n")
	if err := os.Symlink(filepath.Join(base, "outside.yaml"), filepath.Join(root, "symlink", "link.yaml")); err != nil {
		t.Fatal(err)
	}
	ws("cycle", "  - !include a.yaml\n")
	write(t, filepath.Join(root, "cycle", "a.yaml"), "name: A\nchildren:\n  - !include b.yaml\n")
	write(t, filepath.Join(root, "cycle", "b.yaml"), "name: B\nchildren:\n  - !include a.yaml\n")
	ws("deep", "  - !include d1.yaml\n")
	for i := 1; i <= 20; i++ {
		body := "name: D" + strconv.Itoa(i) + "\n"
		if i < 20 {
			body += "children:\n  - !include d" + strconv.Itoa(i+1) + ".yaml\n"
		}
		write(t, filepath.Join(root, "deep", "d"+strconv.Itoa(i)+".yaml"), body)
	}
	ws("missing", "  - name: Lead\n    children:\n      - !include teams/nope.yaml\n")
	ws("dburl", "  - name: Lead\n    workspace_dir: ${DATABASE_URL}\n")
	ws("admintoken", "  - name: Lead\n    channels:\n      - type: webhook\n        config: {secret: \"${ADMIN_TOKEN}\"}\n")
	ws("nope", "  - name: Lead\n    workspace_dir: /srv/${NOPE}\n")
	ws("badcron", "  - name: Lead\n    schedules:\n      - {name: s, cron_expr: \"61 * * * *\", prompt: hi}\n")
	ws("badtz", "  - name: Lead\n    schedules:\n      - {name: s, cron_expr: \"0 * * * *\", timezone: Mars/Base, prompt: hi}\n")
	// Valid up to the last node: nothing of the first nodes may be written.
	ws("latefail", "  - name: Lead\n    schedules:\n      - {name: s, cron_expr: \"0 * * * *\", prompt: hi}\n    children:\n      - name: Ok\n      - name: Bad\n        tier: 9\n")
	ws("dupname", "  - name: Lead\n    children:\n      - name: Lead\n")
	write(t, filepath.Join(root, "emptydir", "readme.txt"), "no org.yaml here")
	return root
}

// assertNothingWritten checks that no row of any import table exists.
func assertNothingWritten(t *testing.T, e *TestServer, label string) {
	t.Helper()
	for _, table := range []string{"workspaces", "workspace_schedules", "workspace_channels", "auth_tokens", "events"} {
		if n := e.Count(table); n != 0 {
			t.Errorf("%s: %d rows in %s after a failed import", label, n, table)
		}
	}
}

func TestImportRefusesBrokenTemplatesAndWritesNothing(t *testing.T) {
	root := brokenTemplates(t)
	e := newOrgEnv(t, map[string]string{"MOLECULE_ORG_TEMPLATES_DIR": root}, provisionertest.New())
	// The server's own environment holds these; a template must never see them.
	t.Setenv("DATABASE_URL", "postgres://secret@db/prod")
	t.Setenv("ADMIN_TOKEN", "super-secret-admin")
	cases := []struct {
		dir    string
		status int
		want   string
	}{
		{"traversal", 400, `"../../outside.yaml" escapes the org template directory`},
		{"absolute", 400, `absolute path "/etc/passwd" is not allowed`},
		{"symlink", 400, `"link.yaml" resolves through a symlink to outside the org template directory`},
		{"cycle", 400, "include cycle: org.yaml -> a.yaml -> b.yaml -> a.yaml"},
		{"deep", 400, "includes nest deeper than 16"},
		{"missing", 400, `file "teams/nope.yaml" not found`},
		{"dburl", 400, "unresolved variable ${DATABASE_URL}"},
		{"admintoken", 400, "unresolved variable ${ADMIN_TOKEN}"},
		{"nope", 400, "unresolved variable ${NOPE}"},
		{"badcron", 400, `invalid cron_expr "61 * * * *"`},
		{"badtz", 400, `unknown timezone "Mars/Base"`},
		{"latefail", 400, "workspaces[0].children[1].tier"},
		{"dupname", 400, `duplicate workspace name "Lead"`},
		{"emptydir", 404, "org template not found"},
		{"no-such-template", 404, "org template not found"},
		{"..", 400, "dir must be the name of a directory"},
		{"../templates/traversal", 400, "dir must be the name of a directory"},
	}
	for _, tc := range cases {
		r := e.Serve("POST", "/org/import", e.Admin, map[string]any{"dir": tc.dir})
		if r.Status != tc.status || !strings.Contains(r.ErrorMessage(t), tc.want) {
			t.Errorf("%s: %d %s; want %d containing %q", tc.dir, r.Status, r.Body, tc.status, tc.want)
		}
		for _, leak := range []string{"postgres://secret", "super-secret-admin", root} {
			if strings.Contains(string(r.Body), leak) {
				t.Errorf("%s: response leaks %q: %s", tc.dir, leak, r.Body)
			}
		}
		assertNothingWritten(t, e, tc.dir)
	}

	inline := []struct {
		name string
		body any
		want string
	}{
		{"include", map[string]any{"template": "name: X\nworkspaces:\n  - !include a.yaml\n"}, "!include is not allowed in an inline template"},
		{"prompt file", map[string]any{"template": "name: X\nworkspaces:\n  - name: A\n    system_prompt_file: p.md\n"}, "inline template"},
		{"dburl", map[string]any{"template": map[string]any{"name": "X", "workspaces": []any{map[string]any{"name": "A", "workspace_dir": "${DATABASE_URL}"}}}}, "unresolved variable ${DATABASE_URL}"},
		{"bad yaml", map[string]any{"template": "name: [\n"}, "invalid YAML"},
		{"no workspaces", map[string]any{"template": "name: X\n"}, "workspaces"},
		{"both", map[string]any{"dir": "x", "template": "name: X"}, "exactly one"},
		{"neither", map[string]any{}, "exactly one"},
		{"template number", map[string]any{"template": 5}, `"template" must be a string of YAML or an object`},
		{"dir type", `{"dir": 5}`, `field "dir" must be a string`},
		{"dir NUL", map[string]any{"dir": "a\x00b"}, "NUL"},
		{"malformed", `{"dir":`, "malformed JSON"},
		{"empty", ``, "request body is required"},
	}
	for _, tc := range inline {
		r := e.Serve("POST", "/org/import", e.Admin, tc.body)
		if r.Status != 400 || !strings.Contains(r.ErrorMessage(t), tc.want) {
			t.Errorf("%s: %d %s; want 400 containing %q", tc.name, r.Status, r.Body, tc.want)
		}
		assertNothingWritten(t, e, tc.name)
	}

	// Bodies over the cap, and the wrong principals.
	big := `{"template": "` + strings.Repeat("x", 2<<20) + `"}`
	if r := e.Serve("POST", "/org/import", e.Admin, big); r.Status != 413 {
		t.Errorf("oversized body: %d", r.Status)
	}
	if r := e.Serve("POST", "/org/import", "", map[string]any{"dir": "cycle"}); r.Status != 401 {
		t.Errorf("no credentials: %d", r.Status)
	}
	if r := e.Serve("POST", "/org/import", "garbage", map[string]any{"dir": "cycle"}); r.Status != 401 {
		t.Errorf("garbage credentials: %d", r.Status)
	}
	assertNothingWritten(t, e, "auth")
	_, tok := e.Workspace(&store.Workspace{Name: "agent"})
	if r := e.Serve("POST", "/org/import", tok, map[string]any{"dir": "cycle"}); r.Status != 403 {
		t.Errorf("workspace token: %d", r.Status)
	}
	if r := e.Serve("GET", "/org/templates", tok, nil); r.Status != 403 {
		t.Errorf("workspace token lists templates: %d", r.Status)
	}
}

type importResponse struct {
	Org        map[string]any `json:"org"`
	Count      int            `json:"count"`
	Created    int            `json:"created"`
	Workspaces []struct {
		ID         uuid.UUID      `json:"id"`
		Name       string         `json:"name"`
		Role       string         `json:"role"`
		Status     string         `json:"status"`
		Created    bool           `json:"created"`
		Connection map[string]any `json:"connection"`
	} `json:"workspaces"`
}

func TestImportExampleOrgTwice(t *testing.T) {
	templates, err := filepath.Abs("../../org-templates")
	if err != nil {
		t.Fatal(err)
	}
	fake := provisionertest.New()
	e := newOrgEnv(t, map[string]string{"MOLECULE_ORG_TEMPLATES_DIR": templates}, fake)
	org, err := orgtemplate.LoadDir(filepath.Join(templates, "software-team"), orgtemplate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The expected tree: node name -> parent name, and schedules per node.
	wantParent := map[string]string{}
	wantSchedules, wantEnabled := 0, 0
	org.Walk(func(_ string, n, p *orgtemplate.Node) error {
		wantParent[n.Name] = ""
		if p != nil {
			wantParent[n.Name] = p.Name
		}
		wantSchedules += len(n.Schedules)
		for _, sc := range n.Schedules {
			if sc.Enabled {
				wantEnabled++
			}
		}
		return nil
	})
	if len(wantParent) < 15 || wantSchedules == 0 {
		t.Fatalf("example org too small: %d workspaces, %d schedules", len(wantParent), wantSchedules)
	}

	// The list shows it with its count after includes.
	r := e.Serve("GET", "/org/templates", e.Admin, nil)
	var list []orgtemplate.Summary
	if err := json.Unmarshal(r.Body, &list); r.Status != 200 || err != nil || len(list) != 1 || list[0].Workspaces != len(wantParent) || list[0].Dir != "software-team" {
		t.Fatalf("GET /org/templates: %d %s", r.Status, r.Body)
	}

	r = e.Serve("POST", "/org/import", e.Admin, map[string]any{"dir": "software-team"})
	if r.Status != 201 {
		t.Fatalf("import: %d %s", r.Status, r.Body)
	}
	var first importResponse
	json.Unmarshal(r.Body, &first)
	if first.Count != len(wantParent) || first.Created != len(wantParent) || first.Org["name"] != org.Name {
		t.Fatalf("import response: %s", r.Body)
	}
	checkTree := func() map[string]uuid.UUID {
		rows, err := e.Store.DB.Query(`SELECT w.name, coalesce(p.name, ''), w.status FROM workspaces w
			LEFT JOIN workspaces p ON p.id = w.parent_id WHERE w.status <> 'removed'`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		got := map[string]string{}
		for rows.Next() {
			var name, parent, status string
			rows.Scan(&name, &parent, &status)
			got[name] = parent
		}
		if len(got) != len(wantParent) {
			t.Fatalf("%d workspaces, want %d", len(got), len(wantParent))
		}
		for name, parent := range wantParent {
			if got[name] != parent {
				t.Errorf("%s: parent %q, want %q", name, got[name], parent)
			}
		}
		if n := e.Count("workspace_schedules", "source = 'template'"); n != wantSchedules {
			t.Errorf("%d template schedules, want %d", n, wantSchedules)
		}
		if n := e.Count("workspace_schedules", "source = 'template' AND enabled AND next_run_at > now()"); n != wantEnabled {
			t.Errorf("%d enabled template schedules with a next run, want %d", n, wantEnabled)
		}
		ids := map[string]uuid.UUID{}
		for _, w := range first.Workspaces {
			ids[w.Name] = w.ID
		}
		return ids
	}
	ids := checkTree()
	// Background provisioning: prompts written, then Provision, for each.
	kit.Eventually(t, "provisioning of every workspace", func() bool { return fake.Total("provision") == len(wantParent) })
	pm := ids[org.Workspaces[0].Name]
	if got, _ := fake.File(pm, "system-prompt.md"); string(got) != org.Workspaces[0].SystemPrompt || len(got) == 0 {
		t.Errorf("PM system prompt not delivered: %q", got)
	}
	pmFiles := strings.Join(fake.Files(pm), ",")
	for _, want := range []string{"system-prompt.md", "initial-prompt.md", "idle-prompt.md", "prompts/"} {
		if !strings.Contains(pmFiles, want) {
			t.Errorf("PM files %s lack %s", pmFiles, want)
		}
	}
	var cfg map[string]any
	cfgData, _ := fake.File(pm, "config.yaml")
	if err := yaml.Unmarshal(cfgData, &cfg); err != nil || cfg["name"] != org.Workspaces[0].Name || cfg["template"] != org.Name {
		t.Errorf("PM config.yaml: %v %s", err, cfgData)
	}
	if tmpl, node, err := e.Store.OrgNodeOf(context.Background(), pm); err != nil || tmpl != "dir:software-team" || node != org.Workspaces[0].Name {
		t.Errorf("OrgNodeOf: %q %q %v", tmpl, node, err)
	}
	if strings.Contains(pmFiles, "workspace.yaml") {
		t.Errorf("template source delivered: %s", pmFiles)
	}
	if n := e.Count("events", "event_type = 'WORKSPACE_PROVISIONING'"); n != len(wantParent) {
		t.Errorf("%d WORKSPACE_PROVISIONING events", n)
	}

	// Runtime state the re-import must keep: a runtime schedule, an edited
	// template schedule's history, a renamed workspace.
	var schedID uuid.UUID
	var schedWS uuid.UUID
	var schedPrompt string
	if err := e.Store.DB.QueryRow(`SELECT id, workspace_id, prompt FROM workspace_schedules WHERE source = 'template' LIMIT 1`).Scan(&schedID, &schedWS, &schedPrompt); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.DB.Exec(`UPDATE workspace_schedules SET prompt = 'edited', run_count = 5 WHERE id = $1`, schedID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.DB.Exec(`INSERT INTO workspace_schedules (id, workspace_id, name, cron_expr, prompt, source)
		VALUES ($1, $2, 'mine', '* * * * *', 'runtime prompt', 'runtime')`, uuid.New(), pm); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.DB.Exec(`INSERT INTO workspace_schedules (id, workspace_id, name, cron_expr, prompt, source)
		VALUES ($1, $2, 'stale', '* * * * *', 'gone from the template', 'template')`, uuid.New(), pm); err != nil {
		t.Fatal(err)
	}

	r = e.Serve("POST", "/org/import", e.Admin, map[string]any{"dir": "software-team"})
	var second importResponse
	json.Unmarshal(r.Body, &second)
	if r.Status != 201 || second.Count != len(wantParent) || second.Created != 0 {
		t.Fatalf("re-import: %d %s", r.Status, r.Body)
	}
	for _, w := range second.Workspaces {
		if ids[w.Name] != w.ID || w.Created {
			t.Errorf("re-import made a new %s", w.Name)
		}
	}
	checkTree()
	var prompt string
	var runs int
	e.Store.DB.QueryRow(`SELECT prompt, run_count FROM workspace_schedules WHERE id = $1`, schedID).Scan(&prompt, &runs)
	if prompt != schedPrompt || runs != 5 {
		t.Errorf("template schedule after re-import: prompt %q runs %d", prompt, runs)
	}
	if n := e.Count("workspace_schedules", "source = 'runtime' AND name = 'mine' AND prompt = 'runtime prompt'"); n != 1 {
		t.Errorf("runtime schedule touched by re-import")
	}
	if n := e.Count("workspace_schedules", "name = 'stale'"); n != 0 {
		t.Errorf("template schedule no longer in the template survived")
	}
	if p := fake.Total("provision"); p != len(wantParent) {
		t.Errorf("re-import re-provisioned existing workspaces: %d calls", p)
	}
}

func TestImportInlineExternalChannelsAndSecrets(t *testing.T) {
	e := newOrgEnv(t, nil, provisionertest.New())
	sealed, err := e.Keyring.Seal([]byte("xoxb-from-secrets"), "global", "SLACK_BOT_TOKEN")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.DB.Exec(`INSERT INTO global_secrets (key, sealed, key_id) VALUES ('SLACK_BOT_TOKEN', $1, 'test')`, sealed); err != nil {
		t.Fatal(err)
	}
	tmpl := `name: Inline Org
workspaces:
  - name: Boss
    channels:
      - type: slack
        config: {bot_token: "${SLACK_BOT_TOKEN}", channel: "#ops"}
      - type: slack
        config: {channel: "#dev"}
        enabled: false
    children:
      - name: Outside Agent
        external: true
`
	r := e.Serve("POST", "/org/import", e.Admin, map[string]any{"template": tmpl})
	if r.Status != 201 {
		t.Fatalf("import: %d %s", r.Status, r.Body)
	}
	var out importResponse
	json.Unmarshal(r.Body, &out)
	ext := out.Workspaces[1]
	if ext.Status != store.StatusAwaitingAgent || ext.Connection == nil {
		t.Fatalf("external workspace: %+v", ext)
	}
	token, _ := ext.Connection["auth_token"].(string)
	rec, err := e.Store.LookupToken(context.Background(), auth.Hash(token))
	if err != nil || rec.WorkspaceID != ext.ID {
		t.Fatalf("connection token does not authenticate the workspace: %+v %v", rec, err)
	}
	if out.Workspaces[0].Connection != nil {
		t.Error("a container workspace got connection info")
	}
	chans, err := e.Store.ListChannels(context.Background(), out.Workspaces[0].ID)
	if err != nil || len(chans) != 2 {
		t.Fatalf("channels: %v %v", chans, err)
	}
	plain, err := e.Keyring.Open(chans[0].ConfigSealed, out.Workspaces[0].ID.String(), store.ChannelSecretName(chans[0].ID))
	if err != nil || !strings.Contains(string(plain), "xoxb-from-secrets") {
		t.Fatalf("channel config: %s %v", plain, err)
	}
	if strings.Contains(string(r.Body), "xoxb") {
		t.Error("response leaks a channel secret")
	}
	if chans[1].Enabled || chans[1].TemplateKey != "slack#1" {
		t.Errorf("second channel: %+v", chans[1])
	}

	// Re-import (same inline org): same rows, no new token, channel ids kept.
	r = e.Serve("POST", "/org/import", e.Admin, map[string]any{"template": tmpl})
	var again importResponse
	json.Unmarshal(r.Body, &again)
	if r.Status != 201 || again.Created != 0 || again.Workspaces[1].Connection != nil {
		t.Fatalf("re-import: %d %s", r.Status, r.Body)
	}
	chans2, _ := e.Store.ListChannels(context.Background(), out.Workspaces[0].ID)
	if len(chans2) != 2 || chans2[0].ID != chans[0].ID {
		t.Errorf("channels replaced on re-import")
	}
	if n := e.Count("auth_tokens"); n != 1 {
		t.Errorf("%d tokens after re-import", n)
	}
}

func TestImportWithoutBackendMarksWorkspacesFailed(t *testing.T) {
	fake := provisionertest.New()
	fake.SetNoBackend(true)
	e := newOrgEnv(t, nil, fake)
	r := e.Serve("POST", "/org/import", e.Admin, map[string]any{"template": map[string]any{
		"name": "Solo", "workspaces": []any{map[string]any{"name": "One", "system_prompt": "hi",
			"children": []any{map[string]any{"name": "Ext", "external": true}}}},
	}})
	if r.Status != 201 {
		t.Fatalf("import: %d %s", r.Status, r.Body)
	}
	kit.Eventually(t, "failed status", func() bool {
		return e.Count("workspaces", "status = 'failed' AND last_sample_error = '"+provisioner.ErrNoBackend.Error()+"'") == 1
	})
	if n := e.Count("workspaces", "status = 'awaiting_agent' AND external"); n != 1 {
		t.Errorf("external workspace status changed")
	}
	// The event follows the status change.
	kit.Eventually(t, "WORKSPACE_PROVISION_FAILED", func() bool {
		return e.Count("events", "event_type = 'WORKSPACE_PROVISION_FAILED'") == 1
	})
}
