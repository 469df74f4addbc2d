package api

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/moleculesai/molecule/internal/testutil"
)

// pluginFixtures makes a plugins dir: hello (valid), evil (a symlink to
// /etc/passwd and one to /etc), picky (runtime other-runtime only),
// broken (bad manifest).
func pluginFixtures(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "hello", "plugin.yaml"), "name: hello\nversion: 1.0.0\ndescription: says hello\nskills: [greet]\n")
	write(t, filepath.Join(dir, "hello", "skills", "greet.md"), "Say hello.")
	write(t, filepath.Join(dir, "evil", "plugin.yaml"), "name: evil\nversion: 0.1.0\n")
	write(t, filepath.Join(dir, "evil", "README.md"), "innocent")
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "evil", "passwd")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(dir, "evil", "etc")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "picky", "plugin.yaml"), "name: picky\nruntimes: [other-runtime]\n")
	write(t, filepath.Join(dir, "broken", "plugin.yaml"), "name: [\n")
	return dir
}

// gitFixture serves github://acme/tools from a local bare repository and
// returns the file:// base URL and two commits (skills/s.md = v1, v2).
func gitFixture(t *testing.T) (string, string, string) {
	t.Helper()
	testutil.NeedCommand(t, "git")
	dir := t.TempDir()
	work := filepath.Join(dir, "work")
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t", "GIT_CONFIG_GLOBAL=/dev/null")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	write(t, filepath.Join(work, "plugin.yaml"), "name: remote-tools\nversion: 2.0.0\n")
	write(t, filepath.Join(work, "skills", "s.md"), "v1")
	git("init", "-q")
	os.Symlink("/etc/passwd", filepath.Join(work, "passwd"))
	git("add", "-A")
	git("commit", "-qm", "one")
	first := git("rev-parse", "HEAD")
	write(t, filepath.Join(work, "skills", "s.md"), "v2")
	git("commit", "-qam", "two")
	second := git("rev-parse", "HEAD")
	if out, err := exec.Command("git", "clone", "-q", "--bare", work, filepath.Join(dir, "srv", "acme", "tools.git")).CombinedOutput(); err != nil {
		t.Fatalf("clone: %v %s", err, out)
	}
	return "file://" + filepath.Join(dir, "srv"), first, second
}

func newPluginEnv(t *testing.T, fake *fakeLifecycle) (*orgEnv, string) {
	base, first, second := gitFixture(t)
	e := newOrgEnv(t, map[string]string{"MOLECULE_PLUGINS_DIR": pluginFixtures(t), "MOLECULE_PLUGIN_GIT_BASE_URL": base}, fake)
	return e, first + " " + second
}

func TestPluginRegistry(t *testing.T) {
	e, _ := newPluginEnv(t, newFakeLifecycle())
	r := e.do("GET", "/plugins", e.admin, nil)
	var list []struct {
		Name, Version, Source, Error string
		Skills                       []string
	}
	if err := json.Unmarshal(r.Body, &list); r.Status != 200 || err != nil || len(list) != 4 {
		t.Fatalf("GET /plugins: %d %s", r.Status, r.Body)
	}
	byName := map[string]int{}
	for i, p := range list {
		byName[p.Name] = i
	}
	hello := list[byName["hello"]]
	if hello.Version != "1.0.0" || hello.Source != "local://hello" || len(hello.Skills) != 1 || hello.Error != "" {
		t.Errorf("hello: %+v", hello)
	}
	if list[byName["broken"]].Error == "" {
		t.Error("a broken manifest is listed without its error")
	}
	_, tok := e.workspace("w", nil)
	if r := e.do("GET", "/plugins", tok, nil); r.Status != 403 {
		t.Errorf("workspace token: %d", r.Status)
	}
	if r := e.do("GET", "/plugins", "", nil); r.Status != 401 {
		t.Errorf("anonymous: %d", r.Status)
	}
}

func TestAllowlistCRUD(t *testing.T) {
	e, _ := newPluginEnv(t, newFakeLifecycle())
	root, rootTok := e.workspace("root", nil)
	child, _ := e.workspace("child", &root)
	path := "/orgs/" + root.String() + "/plugins/allowlist"

	r := e.do("GET", path, e.admin, nil)
	if m := r.m(t); r.Status != 200 || m["allow_all"] != true || len(m["plugins"].([]any)) != 0 {
		t.Fatalf("empty list: %d %s", r.Status, r.Body)
	}
	r = e.do("PUT", path, e.admin, map[string]any{"plugins": []string{"zeta", "hello", "hello"}, "enabled_by": "ops@example.com"})
	if m := r.m(t); r.Status != 200 || strings.Join(toStrings(m["plugins"]), ",") != "hello,zeta" || m["allow_all"] != false {
		t.Fatalf("put: %d %s", r.Status, r.Body)
	}
	r = e.do("GET", path, e.admin, nil)
	m := r.m(t)
	entries := m["entries"].([]any)
	if strings.Join(toStrings(m["plugins"]), ",") != "hello,zeta" || entries[0].(map[string]any)["enabled_by"] != "ops@example.com" {
		t.Fatalf("get: %s", r.Body)
	}
	// Replace: zeta goes, evil comes, hello stays.
	r = e.do("PUT", path, e.admin, map[string]any{"plugins": []string{"hello", "evil"}, "enabled_by": "b"})
	if strings.Join(toStrings(r.m(t)["plugins"]), ",") != "evil,hello" {
		t.Fatalf("replace: %s", r.Body)
	}
	if n := e.count("org_plugin_allowlist"); n != 2 {
		t.Errorf("%d rows", n)
	}
	r = e.do("PUT", path, e.admin, map[string]any{"plugins": []string{}})
	if r.Status != 200 || r.m(t)["allow_all"] != true || e.count("org_plugin_allowlist") != 0 {
		t.Fatalf("clear: %d %s", r.Status, r.Body)
	}

	bad := []struct {
		method, path, bearer string
		body                 any
		status               int
	}{
		{"GET", "/orgs/not-a-uuid/plugins/allowlist", e.admin, nil, 400},
		{"GET", "/orgs/" + uuid.NewString() + "/plugins/allowlist", e.admin, nil, 404},
		{"GET", "/orgs/" + child.String() + "/plugins/allowlist", e.admin, nil, 400},
		{"PUT", "/orgs/" + child.String() + "/plugins/allowlist", e.admin, map[string]any{"plugins": []string{}}, 400},
		{"PUT", "/orgs/" + uuid.NewString() + "/plugins/allowlist", e.admin, map[string]any{"plugins": []string{}}, 404},
		{"PUT", path, e.admin, map[string]any{}, 400},
		{"PUT", path, e.admin, map[string]any{"plugins": "hello"}, 400},
		{"PUT", path, e.admin, map[string]any{"plugins": []any{1}}, 400},
		{"PUT", path, e.admin, map[string]any{"plugins": []string{"../etc"}}, 400},
		{"PUT", path, e.admin, map[string]any{"plugins": []string{"a\x00"}}, 400},
		{"PUT", path, e.admin, map[string]any{"plugins": []string{"ok"}, "enabled_by": "x\x00y"}, 400},
		{"PUT", path, e.admin, map[string]any{"plugins": []string{"ok"}, "enabled_by": 5}, 400},
		{"PUT", path, e.admin, `{"plugins": [`, 400},
		{"PUT", path, e.admin, `{"plugins": ["` + strings.Repeat("a", 2<<20) + `"]}`, 413},
		{"GET", path, "", nil, 401},
		{"PUT", path, "nope", map[string]any{"plugins": []string{}}, 401},
		{"GET", path, rootTok, nil, 403},
		{"PUT", path, rootTok, map[string]any{"plugins": []string{}}, 403},
	}
	for _, tc := range bad {
		if r := e.do(tc.method, tc.path, tc.bearer, tc.body); r.Status != tc.status {
			t.Errorf("%s %s %v: %d %s, want %d", tc.method, tc.path, tc.body, r.Status, r.Body, tc.status)
		}
	}
	if r := e.do("GET", "/orgs/"+child.String()+"/plugins/allowlist", e.admin, nil); r.m(t)["org_id"] != root.String() {
		t.Errorf("non-root answer does not name the org: %s", r.Body)
	}
	many := make([]string, 501)
	for i := range many {
		many[i] = "p" + uuid.NewString()[:8]
	}
	if r := e.do("PUT", path, e.admin, map[string]any{"plugins": many}); r.Status != 400 {
		t.Errorf("501 plugins: %d", r.Status)
	}
	if n := e.count("org_plugin_allowlist"); n != 0 {
		t.Errorf("bad requests wrote %d rows", n)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestPluginInstallDeliverAndUninstall(t *testing.T) {
	fake := newFakeLifecycle()
	e, commits := newPluginEnv(t, fake)
	first, second, _ := strings.Cut(commits, " ")
	root, _ := e.workspace("root", nil)
	ws, tok := e.workspace("dev", &root)
	path := "/workspaces/" + ws.String() + "/plugins"

	r := e.do("POST", path, tok, map[string]any{"source": "local://hello"})
	if r.Status != 201 {
		t.Fatalf("install: %d %s", r.Status, r.Body)
	}
	m := r.m(t)
	digest := m["sha256"].(string)
	if m["name"] != "hello" || m["version"] != "1.0.0" || m["restarting"] != true || len(digest) != 64 {
		t.Errorf("install response: %s", r.Body)
	}
	if got := strings.Join(fake.files(ws), ","); got != "plugins/hello/plugin.yaml,plugins/hello/skills/greet.md" {
		t.Errorf("delivered: %s", got)
	}
	if _, p := fake.calls(); p != 1 {
		t.Errorf("restart calls: %d", p)
	}
	if n := e.count("events", "event_type = 'PLUGIN_INSTALLED'"); n != 1 {
		t.Errorf("PLUGIN_INSTALLED events: %d", n)
	}
	// Pinned by digest: the right one reinstalls (200), a wrong one is
	// refused before anything is delivered.
	if r := e.do("POST", path, e.admin, map[string]any{"source": "local://hello", "sha256": strings.ToUpper(digest)}); r.Status != 200 {
		t.Errorf("reinstall with digest: %d %s", r.Status, r.Body)
	}
	w0, _ := fake.calls()
	r = e.do("POST", path, e.admin, map[string]any{"source": "local://hello", "sha256": strings.Repeat("0", 64)})
	if r.Status != 400 || r.m(t)["sha256"] != digest {
		t.Errorf("wrong digest: %d %s", r.Status, r.Body)
	}
	if w1, _ := fake.calls(); w1 != w0 {
		t.Error("a digest mismatch delivered files")
	}

	// A symlink to /etc/passwd never reaches the workspace.
	r = e.do("POST", path, e.admin, map[string]any{"source": "local://evil"})
	if r.Status != 201 || strings.Join(toStrings(r.m(t)["dropped"]), ",") != "etc,passwd" {
		t.Fatalf("evil: %d %s", r.Status, r.Body)
	}
	for _, p := range fake.files(ws) {
		data, _ := fake.ReadFile(context.Background(), ws, p)
		if strings.Contains(p, "passwd") || strings.Contains(p, "plugins/evil/etc") || strings.Contains(string(data), "root:") {
			t.Errorf("delivered %s (%q)", p, data)
		}
	}

	// A github source pinned to a commit, from the local test repository.
	r = e.do("POST", path, e.admin, map[string]any{"source": "github://acme/tools#" + first})
	if r.Status != 201 {
		t.Fatalf("github install: %d %s", r.Status, r.Body)
	}
	if data, _ := fake.ReadFile(context.Background(), ws, "plugins/remote-tools/skills/s.md"); string(data) != "v1" {
		t.Errorf("pinned commit content: %q", data)
	}
	if _, err := fake.ReadFile(context.Background(), ws, "plugins/remote-tools/passwd"); err == nil {
		t.Error("symlink from git delivered")
	}
	r = e.do("POST", path, e.admin, map[string]any{"source": "github://acme/tools#" + second})
	if data, _ := fake.ReadFile(context.Background(), ws, "plugins/remote-tools/skills/s.md"); r.Status != 200 || string(data) != "v2" {
		t.Errorf("upgrade to second commit: %d %q", r.Status, data)
	}

	r = e.do("GET", path, tok, nil)
	var installed []struct{ Name, Source, SHA256 string }
	json.Unmarshal(r.Body, &installed)
	if r.Status != 200 || len(installed) != 3 || installed[2].Name != "remote-tools" || installed[2].Source != "github://acme/tools#"+second {
		t.Fatalf("list: %d %s", r.Status, r.Body)
	}

	// Uninstall removes the directory and restarts.
	r = e.do("DELETE", path+"/hello", tok, nil)
	if r.Status != 200 {
		t.Fatalf("uninstall: %d %s", r.Status, r.Body)
	}
	for _, p := range fake.files(ws) {
		if strings.HasPrefix(p, "plugins/hello/") {
			t.Errorf("%s left after uninstall", p)
		}
	}
	if r := e.do("DELETE", path+"/hello", tok, nil); r.Status != 404 {
		t.Errorf("second uninstall: %d", r.Status)
	}
	if r := e.do("DELETE", path+"/..", tok, nil); r.Status != 400 && r.Status != 404 {
		t.Errorf("uninstall ..: %d", r.Status)
	}
	if r := e.do("DELETE", path+"/Bad%20Name", tok, nil); r.Status != 400 {
		t.Errorf("uninstall bad name: %d", r.Status)
	}
}

func TestPluginInstallBadInputs(t *testing.T) {
	fake := newFakeLifecycle()
	e, _ := newPluginEnv(t, fake)
	root, _ := e.workspace("root", nil)
	ws, _ := e.workspace("dev", &root)
	_, otherTok := e.workspace("other", nil)
	path := "/workspaces/" + ws.String() + "/plugins"
	sha := strings.Repeat("a", 40)
	cases := []struct {
		bearer string
		body   any
		status int
		want   string
	}{
		{e.admin, `{"source":`, 400, "malformed JSON"},
		{e.admin, ``, 400, "request body is required"},
		{e.admin, map[string]any{"source": 5}, 400, `"source" must be a string`},
		{e.admin, map[string]any{}, 400, "source must be"},
		{e.admin, map[string]any{"source": "https://evil.example/x"}, 400, "source must be"},
		{e.admin, map[string]any{"source": "local://../etc"}, 400, "not a valid plugin name"},
		{e.admin, map[string]any{"source": "local://a\x00b"}, 400, "NUL"},
		{e.admin, map[string]any{"source": "local://nope"}, 404, `plugin "nope" not found`},
		{e.admin, map[string]any{"source": "local://broken"}, 400, "plugin.yaml"},
		{e.admin, map[string]any{"source": "local://picky"}, 400, "does not support runtime molecule-agent"},
		{e.admin, map[string]any{"source": "github://acme/tools#main"}, 400, "40-hex commit"},
		{e.admin, map[string]any{"source": "github://acme/tools"}, 400, "pinned"},
		{e.admin, map[string]any{"source": "github://acme/missing#" + sha}, 502, "could not fetch acme/missing"},
		{e.admin, map[string]any{"source": "github://acme/tools#" + sha}, 404, "not found in acme/tools"},
		{e.admin, map[string]any{"source": "local://hello", "sha256": "xyz"}, 400, "64 hexadecimal"},
		{e.admin, map[string]any{"source": "local://hello", "sha256": 5}, 400, `"sha256" must be a string`},
		{e.admin, `{"source":"` + strings.Repeat("a", 2<<20) + `"}`, 413, ""},
		{"", map[string]any{"source": "local://hello"}, 401, ""},
		{"garbage", map[string]any{"source": "local://hello"}, 401, ""},
		{otherTok, map[string]any{"source": "local://hello"}, 403, ""},
	}
	for _, tc := range cases {
		r := e.do("POST", path, tc.bearer, tc.body)
		if r.Status != tc.status || !strings.Contains(r.errMsg(t), tc.want) {
			t.Errorf("%v: %d %s; want %d %q", tc.body, r.Status, r.Body, tc.status, tc.want)
		}
		if strings.Contains(string(r.Body), "file://") || strings.Contains(string(r.Body), os.TempDir()) {
			t.Errorf("%v: response leaks a path: %s", tc.body, r.Body)
		}
	}
	for _, p := range []string{"/workspaces/not-a-uuid/plugins", "/workspaces/" + uuid.NewString() + "/plugins"} {
		if r := e.do("POST", p, e.admin, map[string]any{"source": "local://hello"}); r.Status != 400 && r.Status != 404 {
			t.Errorf("%s: %d", p, r.Status)
		}
	}
	if w, p := fake.calls(); w != 0 || p != 0 {
		t.Errorf("bad inputs reached the workspace: %d writes, %d provisions", w, p)
	}
	if n := e.count("workspace_plugins"); n != 0 {
		t.Errorf("%d installed rows", n)
	}
}

// The gate: an org allowlist that does not name the plugin blocks the
// install with 403 and PLUGIN_BLOCKED before anything is delivered, for a
// workspace deep in the tree, and even when the workspace has no
// container (no backend at all).
func TestPluginBlockedByOrgAllowlist(t *testing.T) {
	for _, noBackend := range []bool{false, true} {
		fake := newFakeLifecycle()
		fake.noBackend = noBackend
		e, commits := newPluginEnv(t, fake)
		first, _, _ := strings.Cut(commits, " ")
		root, _ := e.workspace("root", nil)
		mid, _ := e.workspace("mid", &root)
		leaf, leafTok := e.workspace("leaf", &mid)
		other, _ := e.workspace("other-org", nil)
		r := e.do("PUT", "/orgs/"+root.String()+"/plugins/allowlist", e.admin, map[string]any{"plugins": []string{"hello"}, "enabled_by": "ops"})
		if r.Status != 200 {
			t.Fatal(r.Status)
		}
		for _, src := range []string{"local://evil", "github://acme/tools#" + first} {
			r = e.do("POST", "/workspaces/"+leaf.String()+"/plugins", leafTok, map[string]any{"source": src})
			if r.Status != 403 || string(r.Body) != `{"code":"forbidden","error":"plugin not on org allowlist"}` {
				t.Errorf("noBackend=%v %s: %d %s", noBackend, src, r.Status, r.Body)
			}
		}
		if w, p := fake.calls(); w != 0 || p != 0 || len(fake.deletes) != 0 {
			t.Errorf("noBackend=%v: blocked install reached the workspace (%d writes, %d provisions, %v)", noBackend, w, p, fake.deletes)
		}
		if n := e.count("events", "event_type = 'PLUGIN_BLOCKED' AND workspace_id = '"+leaf.String()+"'"); n != 2 {
			t.Errorf("PLUGIN_BLOCKED events: %d", n)
		}
		if n := e.count("workspace_plugins"); n != 0 {
			t.Errorf("blocked plugin recorded")
		}
		// Another org is not affected by this org's list.
		r = e.do("POST", "/workspaces/"+other.String()+"/plugins", e.admin, map[string]any{"source": "local://evil"})
		wantOther := 201
		if noBackend {
			wantOther = 503
		}
		if r.Status != wantOther {
			t.Errorf("noBackend=%v other org: %d %s", noBackend, r.Status, r.Body)
		}
		// On the list: allowed.
		r = e.do("POST", "/workspaces/"+leaf.String()+"/plugins", e.admin, map[string]any{"source": "local://hello"})
		if r.Status != wantOther {
			t.Errorf("noBackend=%v allowed plugin: %d %s", noBackend, r.Status, r.Body)
		}
		if noBackend && e.count("workspace_plugins") != 0 {
			t.Error("undelivered plugin recorded as installed")
		}
	}
}
