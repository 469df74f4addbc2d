package orgtemplate

import (
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"
)

func TestLoadDirValidFixture(t *testing.T) {
	opts := Options{
		Secrets: mapSecrets(map[string]string{"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_CHANNEL": "#loses-to-dotenv"}),
		Getenv:  mapEnv(map[string]string{"WORKSPACE_DIR": "/srv/work"}),
	}
	org, err := LoadDir("testdata/valid", opts)
	if err != nil {
		t.Fatal(err)
	}
	if org.Name != "Fixture Org" || org.Root == "" {
		t.Errorf("org = %q root %q", org.Name, org.Root)
	}
	wantDefaults := Defaults{Tier: 3, Model: "test-model", Plugins: []string{"shared-tools"},
		InitialPrompt: "Say hello.", IdlePrompt: "Nothing to do; tidy up.\n"}
	if !reflect.DeepEqual(org.Defaults, wantDefaults) {
		t.Errorf("defaults = %+v", org.Defaults)
	}
	if org.Count() != 4 {
		t.Fatalf("Count = %d, want 4", org.Count())
	}

	lead := org.Workspaces[0]
	budget := int64(5000)
	want := Node{
		Name: "Lead", Role: "lead", Runtime: DefaultRuntime, Tier: 3, Model: "test-model",
		SystemPrompt: "You are the lead.\n", FilesDir: "lead", WorkspaceAccess: "none",
		Plugins: []string{"shared-tools", "lead-only"},
		Schedules: []Schedule{
			{Name: "standup", CronExpr: "0 9 * * 1-5", Timezone: "Europe/Berlin", Prompt: "Run the standup.\n", Enabled: true},
			{Name: "shared", CronExpr: "*/15 * * * *", Timezone: "UTC", Prompt: "Shared prompt at the org root.\n", Enabled: false},
		},
		Channels: []Channel{
			{Type: "slack", Enabled: true, Config: map[string]any{
				"channel": "#eng", "bot_token": "xoxb-test", "mentions": []any{"one", "#eng-x"}, "retries": int64(3)}},
			{Type: "webhook", Enabled: false, Config: map[string]any{
				"url": "https://hooks.example.com/base/lead", "literal": "${NOT_A_VAR} costs $5"}},
		},
		BudgetLimit: &budget,
		Canvas:      &Canvas{X: 10, Y: -20.5},
	}
	children := lead.Children
	lead.Children = nil
	if !reflect.DeepEqual(lead, want) {
		t.Errorf("lead =\n%+v\nwant\n%+v", lead, want)
	}
	if len(children) != 2 {
		t.Fatalf("children = %d", len(children))
	}
	worker, helper := children[0], children[1]
	if worker.Name != "Worker" || worker.SystemPrompt != "Do the work." || worker.WorkspaceDir != "/srv/work/worker" ||
		worker.WorkspaceAccess != "read_only" || worker.Tier != 3 || !reflect.DeepEqual(worker.Plugins, []string{"shared-tools"}) {
		t.Errorf("worker = %+v", worker)
	}
	if helper.Runtime != "other-runtime" || helper.WorkspaceAccess != "none" {
		t.Errorf("helper = %+v", helper)
	}
	ext := org.Workspaces[1]
	if !ext.External || ext.URL != "https://agent.example.com/a2a" || ext.Tier != 1 || ext.Runtime != "custom" {
		t.Errorf("external = %+v", ext)
	}

	var visited []string
	err = org.Walk(func(path string, n, parent *Node) error {
		p := ""
		if parent != nil {
			p = parent.Name
		}
		visited = append(visited, path+"="+n.Name+"<"+p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantVisit := []string{"workspaces[0]=Lead<", "workspaces[0].children[0]=Worker<Lead",
		"workspaces[0].children[1]=Helper<Lead", "workspaces[1]=Outside Agent<"}
	if !reflect.DeepEqual(visited, wantVisit) {
		t.Errorf("walk = %v", visited)
	}
	stop := errors.New("stop")
	calls := 0
	if err := org.Walk(func(string, *Node, *Node) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("walk stop: err %v calls %d", err, calls)
	}
}

func TestParseInlineValid(t *testing.T) {
	src := `
name: Inline
workspaces:
  - name: Solo
    workspace_dir: ${WORKSPACE_DIR}
    channels:
      - type: telegram
        config: {token: "${TG_TOKEN}"}
    schedules: &s
      - {name: ping, cron_expr: "0 * * * *", prompt: ping}
    children:
      - name: Twin
        schedules: *s
`
	org, err := ParseInline([]byte(src), Options{
		Secrets: mapSecrets(map[string]string{"TG_TOKEN": "123:abc"}),
		Getenv:  mapEnv(map[string]string{"WORKSPACE_DIR": "/data"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	solo := org.Workspaces[0]
	if solo.WorkspaceDir != "/data" || solo.WorkspaceAccess != "read_write" || solo.Channels[0].Config["token"] != "123:abc" {
		t.Errorf("solo = %+v", solo)
	}
	if org.Root != "" || org.Count() != 2 || solo.Children[0].Schedules[0].Prompt != "ping" {
		t.Errorf("org = %+v", org)
	}
}

func TestValidation(t *testing.T) {
	ws := func(body string) string {
		return "name: Org\nworkspaces:\n  - name: A\n" + body
	}
	cases := []struct {
		name, yaml, path, msg string
	}{
		{"invalid yaml", "name: [", "", "invalid YAML"},
		{"empty", "", "", "file is empty"},
		{"not a mapping", "- a\n- b\n", "", "expected a mapping, got a list"},
		{"org name missing", "workspaces:\n  - name: A\n", "", "name is required"},
		{"no workspaces", "name: Org\n", "", "at least one workspace is required"},
		{"empty workspaces", "name: Org\nworkspaces: []\n", "workspaces", "at least one workspace is required"},
		{"unknown org field", "name: Org\nworkspace: []\n", "workspace", `unknown field "workspace"`},
		{"unknown node field", ws("    sytem_prompt: hi\n"), "workspaces[0].sytem_prompt", `unknown field "sytem_prompt"`},
		{"duplicate key", ws("    role: a\n    role: b\n"), "workspaces[0].role", `key "role" is set twice`},
		{"name missing", "name: Org\nworkspaces:\n  - role: x\n", "workspaces[0]", "name is required"},
		{"name blank", "name: Org\nworkspaces:\n  - name: '  '\n", "workspaces[0].name", "name is required"},
		{"name too long", "name: Org\nworkspaces:\n  - name: " + strings.Repeat("n", 129) + "\n", "workspaces[0].name", "longer than 128"},
		{"duplicate names", ws("    children:\n      - name: B\n      - name: A\n"), "workspaces[0].children[1].name", `duplicate workspace name "A" (also at workspaces[0])`},
		{"tier zero", ws("    tier: 0\n"), "workspaces[0].tier", "tier must be between 1 and 4, got 0"},
		{"tier five", ws("    tier: 5\n"), "workspaces[0].tier", "between 1 and 4"},
		{"tier string", ws("    tier: high\n"), "workspaces[0].tier", "expected an integer"},
		{"defaults tier", "name: Org\ndefaults: {tier: 7}\nworkspaces:\n  - name: A\n", "defaults.tier", "between 1 and 4"},
		{"access", ws("    workspace_access: write\n"), "workspaces[0].workspace_access", "none, read_only or read_write"},
		{"relative workspace_dir", ws("    workspace_dir: work\n"), "workspaces[0].workspace_dir", "absolute host path"},
		{"cron four fields", ws("    schedules: [{name: s, cron_expr: '0 9 * *', prompt: p}]\n"), "workspaces[0].schedules[0].cron_expr", "must have 5 fields"},
		{"cron six fields", ws("    schedules: [{name: s, cron_expr: '0 0 9 * * *', prompt: p}]\n"), "workspaces[0].schedules[0].cron_expr", "got 6"},
		{"cron descriptor", ws("    schedules: [{name: s, cron_expr: '@daily', prompt: p}]\n"), "workspaces[0].schedules[0].cron_expr", "must have 5 fields"},
		{"cron range", ws("    schedules: [{name: s, cron_expr: '61 * * * *', prompt: p}]\n"), "workspaces[0].schedules[0].cron_expr", "invalid cron_expr"},
		{"cron missing", ws("    schedules: [{name: s, prompt: p}]\n"), "workspaces[0].schedules[0]", "cron_expr is required"},
		{"timezone", ws("    schedules: [{name: s, cron_expr: '* * * * *', timezone: Mars/Olympus, prompt: p}]\n"), "workspaces[0].schedules[0].timezone", `unknown timezone "Mars/Olympus"`},
		{"timezone local", ws("    schedules: [{name: s, cron_expr: '* * * * *', timezone: Local, prompt: p}]\n"), "workspaces[0].schedules[0].timezone", "unknown timezone"},
		{"timezone traversal", ws("    schedules: [{name: s, cron_expr: '* * * * *', timezone: ../../etc/passwd, prompt: p}]\n"), "workspaces[0].schedules[0].timezone", "unknown timezone"},
		{"schedule no prompt", ws("    schedules: [{name: s, cron_expr: '* * * * *'}]\n"), "workspaces[0].schedules[0]", "needs a prompt"},
		{"schedule both prompts", ws("    schedules: [{name: s, cron_expr: '* * * * *', prompt: p, prompt_file: f}]\n"), "workspaces[0].schedules[0].prompt_file", "not both"},
		{"schedule dup", ws("    schedules: [{name: s, cron_expr: '* * * * *', prompt: p}, {name: s, cron_expr: '* * * * *', prompt: q}]\n"), "workspaces[0].schedules[1].name", "duplicate schedule name"},
		{"schedule enabled type", ws("    schedules: [{name: s, cron_expr: '* * * * *', prompt: p, enabled: maybe}]\n"), "workspaces[0].schedules[0].enabled", "expected true or false"},
		{"channel type", ws("    channels: [{type: email}]\n"), "workspaces[0].channels[0].type", "slack, telegram or webhook"},
		{"channel type missing", ws("    channels: [{config: {}}]\n"), "workspaces[0].channels[0]", "type is required"},
		{"channel config list", ws("    channels: [{type: slack, config: [a]}]\n"), "workspaces[0].channels[0].config", "config must be a mapping"},
		{"channel bad var", ws("    channels: [{type: slack, config: {a: '${1X}'}}]\n"), "workspaces[0].channels[0].config.a", "invalid variable name"},
		{"channel open var", ws("    channels: [{type: slack, config: {a: '${X'}}]\n"), "workspaces[0].channels[0].config.a", "unterminated"},
		{"budget negative", ws("    budget_limit: -1\n"), "workspaces[0].budget_limit", "0 or more"},
		{"budget float", ws("    budget_limit: 1.5\n"), "workspaces[0].budget_limit", "expected an integer"},
		{"url not external", ws("    url: https://x.example\n"), "workspaces[0].url", "only valid for an external workspace"},
		{"url scheme", ws("    external: true\n    url: file:///etc/passwd\n"), "workspaces[0].url", "absolute http(s) URL"},
		{"canvas", ws("    canvas: {x: left}\n"), "workspaces[0].canvas.x", "expected a number"},
		{"children not list", ws("    children: {name: B}\n"), "workspaces[0].children", "expected a list"},
		{"plugins blank", ws("    plugins: ['']\n"), "workspaces[0].plugins[0]", "invalid plugin"},
		{"unknown tag", ws("    role: !secret x\n"), "workspaces[0].role", `unknown tag "!secret"`},
		{"system prompt both", ws("    system_prompt: a\n    system_prompt_file: b\n"), "workspaces[0].system_prompt_file", "not both"},
		{"merge scalar", "name: Org\nworkspaces:\n  - <<: x\n    name: A\n", "workspaces[0]", "merge key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseInline([]byte(c.yaml), Options{})
			if err == nil {
				t.Fatal("want an error")
			}
			wantErr(t, err, "", c.path, c.msg)
		})
	}
}

func TestAliasBombIsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("name: Org\nworkspaces:\n  - name: A\n    channels:\n      - type: webhook\n        config:\n          l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		b.WriteString("          l" + string(rune('0'+i)) + ": &l" + string(rune('0'+i)) + " [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*l" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	_, err := ParseInline([]byte(b.String()), Options{})
	var e *Error
	if !errors.As(err, &e) || !strings.HasPrefix(e.Path, "workspaces[0].channels[0].config.") ||
		!strings.Contains(e.Msg, "more than 200000 YAML nodes") {
		t.Fatalf("want the node budget error, got %v", err)
	}
}

func TestParseDotenv(t *testing.T) {
	got, err := parseDotenv("# comment\n\nA=1\nexport B = two words # note\nC='single # kept'\nD=\"dq \\\"x\\\"\\n\"\nE=\r\nF=a=b\n")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"A": "1", "B": "two words", "C": "single # kept", "D": "dq \"x\"\n", "E": "", "F": "a=b"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q", got)
	}
	for _, bad := range []string{"NOEQUALS", "1A=x", "A=\"open", "A='open", "A=\"x\" y"} {
		if _, err := parseDotenv(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}

	root := t.TempDir()
	writeFile(t, root, ".env", "ok=1\nbroken line\n")
	writeFile(t, root, "org.yaml", "name: Org\nworkspaces:\n  - name: A\n")
	_, err = LoadDir(root, Options{})
	e := wantErr(t, err, ".env", "", "expected KEY=VALUE")
	if e.Line != 2 {
		t.Errorf("Line = %d", e.Line)
	}
}

func TestList(t *testing.T) {
	got, err := List("testdata", Options{Secrets: mapSecrets(map[string]string{"SLACK_BOT_TOKEN": "x"}), Getenv: mapEnv(map[string]string{"WORKSPACE_DIR": "/w"})})
	if err != nil {
		t.Fatal(err)
	}
	byDir := map[string]Summary{}
	var dirs []string
	for _, s := range got {
		byDir[s.Dir] = s
		dirs = append(dirs, s.Dir)
	}
	if _, ok := byDir["not-a-template"]; ok {
		t.Error("a directory without org.yaml is listed")
	}
	if v := byDir["valid"]; v.Name != "Fixture Org" || v.Workspaces != 4 || v.Error != "" {
		t.Errorf("valid = %+v", v)
	}
	if b := byDir["broken-list"]; b.Error == "" || !strings.Contains(b.Error, "tier must be between 1 and 4") || b.Workspaces != 0 {
		t.Errorf("broken = %+v", b)
	}
	if c := byDir["cycle"]; !strings.Contains(c.Error, "include cycle") {
		t.Errorf("cycle = %+v", c)
	}
	if !sort.StringsAreSorted(dirs) {
		t.Errorf("not sorted: %v", dirs)
	}

	none, err := List("testdata/does-not-exist", Options{})
	if err != nil || len(none) != 0 {
		t.Errorf("missing root: %v %v", none, err)
	}
	if _, err := List("testdata/outside.yaml", Options{}); err == nil {
		t.Error("a file as templates root: want an error")
	}
}

func TestResolveDir(t *testing.T) {
	if p, err := ResolveDir("/templates", "software-team"); err != nil || p != "/templates/software-team" {
		t.Errorf("got %q %v", p, err)
	}
	for _, bad := range []string{"", ".", "..", "../etc", "a/b", `a\b`, "/abs", "a\x00b"} {
		if _, err := ResolveDir("/templates", bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}
