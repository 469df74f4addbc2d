package orgtemplate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// wantErr asserts err is an *Error (not a not-found) whose fields match
// and whose text contains every fragment.
func wantErr(t *testing.T, err error, file, path string, fragments ...string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want *Error, got %T: %v", err, err)
	}
	if IsNotFound(err) {
		t.Fatalf("a broken template must not be a not-found: %v", err)
	}
	if e.File != file {
		t.Errorf("File = %q, want %q (err: %v)", e.File, file, err)
	}
	if e.Path != path {
		t.Errorf("Path = %q, want %q (err: %v)", e.Path, path, err)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not contain %q", err.Error(), f)
		}
	}
	return e
}

func TestLoadDirRefusesTraversal(t *testing.T) {
	_, err := LoadDir("testdata/traversal", Options{})
	e := wantErr(t, err, "teams/team.yaml", "workspaces[0].children[0]", `"../../outside.yaml" escapes the org template directory`)
	if e.Line != 3 {
		t.Errorf("Line = %d, want 3", e.Line)
	}
	if strings.Contains(err.Error(), "Escaped") {
		t.Error("the outside file was read")
	}
}

func TestLoadDirRefusesAbsoluteInclude(t *testing.T) {
	_, err := LoadDir("testdata/absolute", Options{})
	wantErr(t, err, "org.yaml", "workspaces[0]", `absolute path "/etc/passwd" is not allowed`)
}

func TestLoadDirRefusesSymlinkOutOfRoot(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret.yaml"), []byte("name: Secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	writeFile(t, root, "org.yaml", "name: Org\nworkspaces:\n  - !include teams/link.yaml\n")
	writeFile(t, root, "teams/ok.yaml", "name: OK\n")
	if err := os.Symlink(filepath.Join(outside, "secret.yaml"), filepath.Join(root, "teams", "link.yaml")); err != nil {
		t.Fatalf("create symlink: %v", err)
	}
	_, err := LoadDir(root, Options{})
	wantErr(t, err, "org.yaml", "workspaces[0]", `"teams/link.yaml" resolves through a symlink to outside the org template directory`)
	if strings.Contains(err.Error(), outside) {
		t.Errorf("error leaks the host path: %v", err)
	}

	// A directory symlink pointing out is refused the same way, for
	// includes and for prompt files.
	if err := os.Symlink(outside, filepath.Join(root, "shared")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, root, "org.yaml", "name: Org\nworkspaces:\n  - name: A\n    system_prompt_file: shared/secret.yaml\n")
	_, err = LoadDir(root, Options{})
	wantErr(t, err, "org.yaml", "workspaces[0].system_prompt_file", "resolves through a symlink to outside")

	// A symlink that stays inside the root is fine.
	writeFile(t, root, "org.yaml", "name: Org\nworkspaces:\n  - !include teams/inner.yaml\n")
	if err := os.Symlink("ok.yaml", filepath.Join(root, "teams", "inner.yaml")); err != nil {
		t.Fatal(err)
	}
	org, err := LoadDir(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if org.Workspaces[0].Name != "OK" {
		t.Errorf("got %q", org.Workspaces[0].Name)
	}
}

func TestLoadDirSymlinkedRoot(t *testing.T) {
	// The root itself may be reached through a symlink (a bind-mounted
	// templates dir); confinement is to its real path.
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	writeFile(t, real, "org.yaml", "name: Org\nworkspaces:\n  - !include a.yaml\n")
	writeFile(t, real, "a.yaml", "name: A\n")
	if err := os.Symlink(real, filepath.Join(dir, "link")); err != nil {
		t.Fatalf("create symlink: %v", err)
	}
	if _, err := LoadDir(filepath.Join(dir, "link"), Options{}); err != nil {
		t.Fatal(err)
	}
}

func TestLoadDirReportsCycle(t *testing.T) {
	_, err := LoadDir("testdata/cycle", Options{})
	wantErr(t, err, "b.yaml", "workspaces[0].children[0].children[0]", "include cycle: org.yaml -> a.yaml -> b.yaml -> a.yaml")
}

func TestLoadDirCapsDepth(t *testing.T) {
	build := func(t *testing.T, levels int) string {
		root := t.TempDir()
		writeFile(t, root, "org.yaml", "name: Deep\nworkspaces:\n  - !include d/1.yaml\n")
		for i := 1; i <= levels; i++ {
			body := fmt.Sprintf("name: N%d\n", i)
			if i < levels {
				body += fmt.Sprintf("children:\n  - !include %d.yaml\n", i+1)
			}
			writeFile(t, root, fmt.Sprintf("d/%d.yaml", i), body)
		}
		return root
	}
	_, err := LoadDir(build(t, 20), Options{})
	wantErr(t, err, "d/16.yaml", "workspaces[0]"+strings.Repeat(".children[0]", 16), "includes nest deeper than 16", "org.yaml -> d/1.yaml -> d/2.yaml", "d/16.yaml -> d/17.yaml")

	org, err := LoadDir(build(t, MaxIncludeDepth), Options{})
	if err != nil {
		t.Fatalf("%d levels must load: %v", MaxIncludeDepth, err)
	}
	if org.Count() != MaxIncludeDepth {
		t.Errorf("Count = %d, want %d", org.Count(), MaxIncludeDepth)
	}
}

func TestLoadDirNamesMissingFile(t *testing.T) {
	_, err := LoadDir("testdata/missing", Options{})
	e := wantErr(t, err, "org.yaml", "workspaces[0].children[0]", `file "teams/nope.yaml" not found`)
	if e.Line != 5 {
		t.Errorf("Line = %d, want 5", e.Line)
	}
}

func TestLoadDirNotFound(t *testing.T) {
	for _, dir := range []string{"testdata/does-not-exist", "testdata/not-a-template", "testdata/outside.yaml"} {
		_, err := LoadDir(dir, Options{})
		if !IsNotFound(err) {
			t.Errorf("%s: want not-found, got %v", dir, err)
		}
	}
	if IsNotFound(errors.New("other")) {
		t.Error("IsNotFound on an unrelated error")
	}
}

func TestParseInlineRefusesFiles(t *testing.T) {
	cases := map[string]struct {
		yaml, path, msg string
	}{
		"include":            {"name: X\nworkspaces:\n  - !include a.yaml\n", "workspaces[0]", "!include is not allowed in an inline template"},
		"nested include":     {"name: X\nworkspaces:\n  - name: A\n    children: [!include b.yaml]\n", "workspaces[0].children[0]", "!include is not allowed"},
		"system_prompt_file": {"name: X\nworkspaces:\n  - name: A\n    system_prompt_file: p.md\n", "workspaces[0].system_prompt_file", "cannot reference files"},
		"prompt_file":        {"name: X\nworkspaces:\n  - name: A\n    schedules:\n      - {name: s, cron_expr: '* * * * *', prompt_file: p.md}\n", "workspaces[0].schedules[0].prompt_file", "cannot reference files"},
		"files_dir":          {"name: X\nworkspaces:\n  - name: A\n    files_dir: a\n", "workspaces[0].files_dir", "cannot reference files"},
		"defaults file":      {"name: X\ndefaults:\n  idle_prompt_file: idle.md\nworkspaces:\n  - name: A\n", "defaults.idle_prompt_file", "cannot reference files"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseInline([]byte(c.yaml), Options{})
			wantErr(t, err, "", c.path, c.msg)
		})
	}
}

func TestServerEnvironmentIsNotVisible(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://user:hunter2@db/molecule")
	t.Setenv("ADMIN_TOKEN", "very-secret-admin")
	// Even with the real os.Getenv and the variable set, only allowlisted
	// names are read.
	_, err := LoadDir("testdata/env-database-url", Options{})
	wantErr(t, err, "org.yaml", "workspaces[0].channels[0].config.url", "unresolved variable ${DATABASE_URL}")
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error leaks the value: %v", err)
	}

	inline := "name: X\nworkspaces:\n  - name: A\n    workspace_dir: /x/${ADMIN_TOKEN}\n"
	_, err = ParseInline([]byte(inline), Options{})
	wantErr(t, err, "", "workspaces[0].workspace_dir", "unresolved variable ${ADMIN_TOKEN}")

	// An operator who allowlists it explicitly opts in.
	org, err := LoadDir("testdata/env-database-url", Options{AllowedEnv: []string{"DATABASE_URL"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := org.Workspaces[0].Channels[0].Config["url"]; got != "postgres://user:hunter2@db/molecule" {
		t.Errorf("url = %v", got)
	}
}

func TestUnresolvedVariable(t *testing.T) {
	_, err := LoadDir("testdata/env-unresolved", Options{})
	wantErr(t, err, "org.yaml", "workspaces[0].workspace_dir", "unresolved variable ${NOPE}")

	// An empty allowlist hides even WORKSPACE_DIR.
	_, err = LoadDir("testdata/valid", Options{AllowedEnv: []string{}, Getenv: mapEnv(map[string]string{"WORKSPACE_DIR": "/srv"}),
		Secrets: mapSecrets(map[string]string{"SLACK_BOT_TOKEN": "x"})})
	wantErr(t, err, "teams/team.yaml", "workspaces[0].children[0].workspace_dir", "unresolved variable ${WORKSPACE_DIR}")
}

func TestVariablePrecedence(t *testing.T) {
	env := map[string]string{"FROM_DOTENV": "env", "FROM_SECRET": "env", "WORKSPACE_DIR": "env"}
	allowed := []string{"FROM_DOTENV", "FROM_SECRET", "WORKSPACE_DIR"}
	cases := []struct {
		name    string
		secrets map[string]string
		want    map[string]any
		dir     string
	}{
		{"dotenv over secrets over env", map[string]string{"FROM_DOTENV": "secret", "FROM_SECRET": "secret"},
			map[string]any{"a": "dotenv", "b": "secret", "c": "env"}, "/srv/env"},
		{"secret over env", map[string]string{"FROM_SECRET": "secret", "WORKSPACE_DIR": "secret"},
			map[string]any{"a": "dotenv", "b": "secret", "c": "secret"}, "/srv/secret"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			org, err := LoadDir("testdata/env-precedence", Options{Secrets: mapSecrets(c.secrets), AllowedEnv: allowed, Getenv: mapEnv(env)})
			if err != nil {
				t.Fatal(err)
			}
			n := org.Workspaces[0]
			if !reflect.DeepEqual(n.Channels[0].Config, c.want) {
				t.Errorf("config = %v, want %v", n.Channels[0].Config, c.want)
			}
			if n.WorkspaceDir != c.dir {
				t.Errorf("workspace_dir = %q, want %q", n.WorkspaceDir, c.dir)
			}
		})
	}
	// Without the secret, the env value is not visible unless allowlisted.
	_, err := LoadDir("testdata/env-precedence", Options{Getenv: mapEnv(env)})
	wantErr(t, err, "org.yaml", "workspaces[0].channels[0].config.b", "unresolved variable ${FROM_SECRET}")
}

func TestFileSizeCap(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "org.yaml", "name: Org\nworkspaces:\n  - name: A\n    system_prompt_file: big.md\n")
	writeFile(t, root, "big.md", strings.Repeat("x", 2048))
	_, err := LoadDir(root, Options{MaxFileSize: 1024})
	wantErr(t, err, "org.yaml", "workspaces[0].system_prompt_file", `file "big.md" is larger than 1024 bytes`)

	_, err = ParseInline([]byte(strings.Repeat("#", 2048)), Options{MaxFileSize: 1024})
	wantErr(t, err, "", "", "larger than 1024 bytes")
}

func TestPromptFileLookup(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "org.yaml", "name: Org\nworkspaces:\n  - !include role/workspace.yaml\n")
	writeFile(t, root, "role/workspace.yaml", "name: R\nfiles_dir: role\nsystem_prompt_file: p.md\n")
	writeFile(t, root, "p.md", "root prompt")
	org, err := LoadDir(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := org.Workspaces[0].SystemPrompt; got != "root prompt" {
		t.Errorf("fallback to the org root: got %q", got)
	}
	writeFile(t, root, "role/p.md", "role prompt")
	if org, err = LoadDir(root, Options{}); err != nil {
		t.Fatal(err)
	}
	if got := org.Workspaces[0].SystemPrompt; got != "role prompt" {
		t.Errorf("files_dir first: got %q", got)
	}
	writeFile(t, root, "role/workspace.yaml", "name: R\nfiles_dir: role\nsystem_prompt_file: nope.md\n")
	_, err = LoadDir(root, Options{})
	wantErr(t, err, "role/workspace.yaml", "workspaces[0].system_prompt_file", `prompt file "nope.md" not found in role/ or the org root`)

	writeFile(t, root, "role/workspace.yaml", "name: R\nfiles_dir: ../..\n")
	_, err = LoadDir(root, Options{})
	wantErr(t, err, "role/workspace.yaml", "workspaces[0].files_dir", "escapes the org template directory")
}

func writeFile(t *testing.T, root, rel, body string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func mapSecrets(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestErrorsInsideIncludedFiles(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "org.yaml", "name: Org\nworkspaces:\n  - <<: !include pm/workspace.yaml\n    children:\n      - !include teams/dev.yaml\n")
	writeFile(t, root, "pm/workspace.yaml", "name: PM\n")
	writeFile(t, root, "teams/dev.yaml", "<<: !include ../lead/workspace.yaml\nchildren:\n  - !include ../fe/workspace.yaml\n")
	writeFile(t, root, "lead/workspace.yaml", "name: Lead\n")
	writeFile(t, root, "fe/workspace.yaml", "name: FE\nschedules:\n  - name: s\n    cron_expr: '* * *'\n    prompt: p\n")
	_, err := LoadDir(root, Options{})
	e := wantErr(t, err, "fe/workspace.yaml", "workspaces[0].children[0].children[0].schedules[0].cron_expr", "must have 5 fields")
	if e.Line != 4 {
		t.Errorf("Line = %d, want 4", e.Line)
	}

	// A bad field in a merged file points into that file.
	writeFile(t, root, "fe/workspace.yaml", "name: FE\n")
	writeFile(t, root, "lead/workspace.yaml", "name: Lead\ntier: 8\n")
	_, err = LoadDir(root, Options{})
	wantErr(t, err, "lead/workspace.yaml", "workspaces[0].children[0].tier", "tier must be between 1 and 4, got 8")

	// Explicit keys win over merged ones, so the team file may override.
	writeFile(t, root, "teams/dev.yaml", "<<: !include ../lead/workspace.yaml\ntier: 4\n")
	org, err := LoadDir(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := org.Workspaces[0].Children[0]; got.Name != "Lead" || got.Tier != 4 {
		t.Errorf("lead = %+v", got)
	}

	// Invalid YAML in an included file names that file.
	writeFile(t, root, "teams/dev.yaml", "name: [\n")
	_, err = LoadDir(root, Options{})
	wantErr(t, err, "teams/dev.yaml", "", "invalid YAML")
}

func TestHostileYAML(t *testing.T) {
	deep := strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)
	for name, src := range map[string]string{
		"deep nesting": "name: Org\nworkspaces: " + deep + "\n",
		"binary":       "\x00\x01\x02\xff",
		"tabs":         "name: Org\n\tworkspaces: []\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseInline([]byte(src), Options{})
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("want *Error, got %v", err)
			}
		})
	}
}
