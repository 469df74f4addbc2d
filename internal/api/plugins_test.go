package api

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/provisioner/provisionertest"
	"github.com/moleculesai/molecule/internal/store"
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

func newPluginEnv(t *testing.T, fake *provisionertest.Lifecycle) (*TestServer, string) {
	base, first, second := testutil.GitPluginRepo(t)
	e := newOrgEnv(t, map[string]string{"MOLECULE_PLUGINS_DIR": pluginFixtures(t), "MOLECULE_PLUGIN_GIT_BASE_URL": base}, fake)
	return e, first + " " + second
}

func TestPluginRegistry(t *testing.T) {
	e, _ := newPluginEnv(t, provisionertest.New())
	r := e.Serve("GET", "/plugins", e.Admin, nil)
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
	_, tok := e.Workspace(&store.Workspace{Name: "w"})
	if r := e.Serve("GET", "/plugins", tok, nil); r.Status != 403 {
		t.Errorf("workspace token: %d", r.Status)
	}
	if r := e.Serve("GET", "/plugins", "", nil); r.Status != 401 {
		t.Errorf("anonymous: %d", r.Status)
	}
}

func TestAllowlistCRUD(t *testing.T) {
	e, _ := newPluginEnv(t, provisionertest.New())
	root, rootTok := e.Workspace(&store.Workspace{Name: "root"})
	child, _ := e.Workspace(&store.Workspace{Name: "child", ParentID: &root})
	path := "/orgs/" + root.String() + "/plugins/allowlist"

	r := e.Serve("GET", path, e.Admin, nil)
	if m := r.Map(t); r.Status != 200 || m["allow_all"] != true || len(m["plugins"].([]any)) != 0 {
		t.Fatalf("empty list: %d %s", r.Status, r.Body)
	}
	r = e.Serve("PUT", path, e.Admin, map[string]any{"plugins": []string{"zeta", "hello", "hello"}, "enabled_by": "ops@example.com"})
	if m := r.Map(t); r.Status != 200 || strings.Join(toStrings(m["plugins"]), ",") != "hello,zeta" || m["allow_all"] != false {
		t.Fatalf("put: %d %s", r.Status, r.Body)
	}
	r = e.Serve("GET", path, e.Admin, nil)
	m := r.Map(t)
	entries := m["entries"].([]any)
	if strings.Join(toStrings(m["plugins"]), ",") != "hello,zeta" || entries[0].(map[string]any)["enabled_by"] != "ops@example.com" {
		t.Fatalf("get: %s", r.Body)
	}
	// Replace: zeta goes, evil comes, hello stays.
	r = e.Serve("PUT", path, e.Admin, map[string]any{"plugins": []string{"hello", "evil"}, "enabled_by": "b"})
	if strings.Join(toStrings(r.Map(t)["plugins"]), ",") != "evil,hello" {
		t.Fatalf("replace: %s", r.Body)
	}
	if n := e.Count("org_plugin_allowlist"); n != 2 {
		t.Errorf("%d rows", n)
	}
	r = e.Serve("PUT", path, e.Admin, map[string]any{"plugins": []string{}})
	if r.Status != 200 || r.Map(t)["allow_all"] != true || e.Count("org_plugin_allowlist") != 0 {
		t.Fatalf("clear: %d %s", r.Status, r.Body)
	}

	bad := []struct {
		method, path, bearer string
		body                 any
		status               int
	}{
		{"GET", "/orgs/not-a-uuid/plugins/allowlist", e.Admin, nil, 400},
		{"GET", "/orgs/" + uuid.NewString() + "/plugins/allowlist", e.Admin, nil, 404},
		{"GET", "/orgs/" + child.String() + "/plugins/allowlist", e.Admin, nil, 400},
		{"PUT", "/orgs/" + child.String() + "/plugins/allowlist", e.Admin, map[string]any{"plugins": []string{}}, 400},
		{"PUT", "/orgs/" + uuid.NewString() + "/plugins/allowlist", e.Admin, map[string]any{"plugins": []string{}}, 404},
		{"PUT", path, e.Admin, map[string]any{}, 400},
		{"PUT", path, e.Admin, map[string]any{"plugins": "hello"}, 400},
		{"PUT", path, e.Admin, map[string]any{"plugins": []any{1}}, 400},
		{"PUT", path, e.Admin, map[string]any{"plugins": []string{"../etc"}}, 400},
		{"PUT", path, e.Admin, map[string]any{"plugins": []string{"a\x00"}}, 400},
		{"PUT", path, e.Admin, map[string]any{"plugins": []string{"ok"}, "enabled_by": "x\x00y"}, 400},
		{"PUT", path, e.Admin, map[string]any{"plugins": []string{"ok"}, "enabled_by": 5}, 400},
		{"PUT", path, e.Admin, `{"plugins": [`, 400},
		{"PUT", path, e.Admin, `{"plugins": ["` + strings.Repeat("a", 2<<20) + `"]}`, 413},
		{"GET", path, "", nil, 401},
		{"PUT", path, "nope", map[string]any{"plugins": []string{}}, 401},
		{"GET", path, rootTok, nil, 403},
		{"PUT", path, rootTok, map[string]any{"plugins": []string{}}, 403},
	}
	for _, tc := range bad {
		if r := e.Serve(tc.method, tc.path, tc.bearer, tc.body); r.Status != tc.status {
			t.Errorf("%s %s %v: %d %s, want %d", tc.method, tc.path, tc.body, r.Status, r.Body, tc.status)
		}
	}
	if r := e.Serve("GET", "/orgs/"+child.String()+"/plugins/allowlist", e.Admin, nil); r.Map(t)["org_id"] != root.String() {
		t.Errorf("non-root answer does not name the org: %s", r.Body)
	}
	many := make([]string, 501)
	for i := range many {
		many[i] = "p" + uuid.NewString()[:8]
	}
	if r := e.Serve("PUT", path, e.Admin, map[string]any{"plugins": many}); r.Status != 400 {
		t.Errorf("501 plugins: %d", r.Status)
	}
	if n := e.Count("org_plugin_allowlist"); n != 0 {
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
	fake := provisionertest.New()
	e, commits := newPluginEnv(t, fake)
	first, second, _ := strings.Cut(commits, " ")
	root, _ := e.Workspace(&store.Workspace{Name: "root"})
	ws, tok := e.Workspace(&store.Workspace{Name: "dev", ParentID: &root})
	path := "/workspaces/" + ws.String() + "/plugins"

	r := e.Serve("POST", path, tok, map[string]any{"source": "local://hello"})
	if r.Status != 201 {
		t.Fatalf("install: %d %s", r.Status, r.Body)
	}
	m := r.Map(t)
	digest := m["sha256"].(string)
	if m["name"] != "hello" || m["version"] != "1.0.0" || m["restarting"] != true || len(digest) != 64 {
		t.Errorf("install response: %s", r.Body)
	}
	if got := strings.Join(fake.Files(ws), ","); got != "plugins/hello/plugin.yaml,plugins/hello/skills/greet.md" {
		t.Errorf("delivered: %s", got)
	}
	if p := fake.Total("provision"); p != 1 {
		t.Errorf("restart calls: %d", p)
	}
	if n := e.Count("events", "event_type = 'PLUGIN_INSTALLED'"); n != 1 {
		t.Errorf("PLUGIN_INSTALLED events: %d", n)
	}
	// Pinned by digest: the right one reinstalls (200), a wrong one is
	// refused before anything is delivered.
	if r := e.Serve("POST", path, e.Admin, map[string]any{"source": "local://hello", "sha256": strings.ToUpper(digest)}); r.Status != 200 {
		t.Errorf("reinstall with digest: %d %s", r.Status, r.Body)
	}
	w0 := fake.Total("write")
	r = e.Serve("POST", path, e.Admin, map[string]any{"source": "local://hello", "sha256": strings.Repeat("0", 64)})
	if r.Status != 400 || r.Map(t)["sha256"] != digest {
		t.Errorf("wrong digest: %d %s", r.Status, r.Body)
	}
	if w1 := fake.Total("write"); w1 != w0 {
		t.Error("a digest mismatch delivered files")
	}

	// A symlink to /etc/passwd never reaches the workspace.
	r = e.Serve("POST", path, e.Admin, map[string]any{"source": "local://evil"})
	if r.Status != 201 || strings.Join(toStrings(r.Map(t)["dropped"]), ",") != "etc,passwd" {
		t.Fatalf("evil: %d %s", r.Status, r.Body)
	}
	for _, p := range fake.Files(ws) {
		data, _ := fake.File(ws, p)
		if strings.Contains(p, "passwd") || strings.Contains(p, "plugins/evil/etc") || strings.Contains(string(data), "root:") {
			t.Errorf("delivered %s (%q)", p, data)
		}
	}

	// A github source pinned to a commit, from the local test repository.
	r = e.Serve("POST", path, e.Admin, map[string]any{"source": "github://acme/tools#" + first})
	if r.Status != 201 {
		t.Fatalf("github install: %d %s", r.Status, r.Body)
	}
	if data, _ := fake.File(ws, "plugins/remote-tools/skills/s.md"); string(data) != "v1" {
		t.Errorf("pinned commit content: %q", data)
	}
	if _, ok := fake.File(ws, "plugins/remote-tools/passwd"); ok {
		t.Error("symlink from git delivered")
	}
	r = e.Serve("POST", path, e.Admin, map[string]any{"source": "github://acme/tools#" + second})
	if data, _ := fake.File(ws, "plugins/remote-tools/skills/s.md"); r.Status != 200 || string(data) != "v2" {
		t.Errorf("upgrade to second commit: %d %q", r.Status, data)
	}

	r = e.Serve("GET", path, tok, nil)
	var installed []struct{ Name, Source, SHA256 string }
	json.Unmarshal(r.Body, &installed)
	if r.Status != 200 || len(installed) != 3 || installed[2].Name != "remote-tools" || installed[2].Source != "github://acme/tools#"+second {
		t.Fatalf("list: %d %s", r.Status, r.Body)
	}

	// Uninstall removes the directory and restarts.
	r = e.Serve("DELETE", path+"/hello", tok, nil)
	if r.Status != 200 {
		t.Fatalf("uninstall: %d %s", r.Status, r.Body)
	}
	for _, p := range fake.Files(ws) {
		if strings.HasPrefix(p, "plugins/hello/") {
			t.Errorf("%s left after uninstall", p)
		}
	}
	if r := e.Serve("DELETE", path+"/hello", tok, nil); r.Status != 404 {
		t.Errorf("second uninstall: %d", r.Status)
	}
	if r := e.Serve("DELETE", path+"/..", tok, nil); r.Status != 400 && r.Status != 404 {
		t.Errorf("uninstall ..: %d", r.Status)
	}
	if r := e.Serve("DELETE", path+"/Bad%20Name", tok, nil); r.Status != 400 {
		t.Errorf("uninstall bad name: %d", r.Status)
	}
}

func TestPluginInstallBadInputs(t *testing.T) {
	fake := provisionertest.New()
	e, _ := newPluginEnv(t, fake)
	root, _ := e.Workspace(&store.Workspace{Name: "root"})
	ws, _ := e.Workspace(&store.Workspace{Name: "dev", ParentID: &root})
	_, otherTok := e.Workspace(&store.Workspace{Name: "other"})
	path := "/workspaces/" + ws.String() + "/plugins"
	sha := strings.Repeat("a", 40)
	cases := []struct {
		bearer string
		body   any
		status int
		want   string
	}{
		{e.Admin, `{"source":`, 400, "malformed JSON"},
		{e.Admin, ``, 400, "request body is required"},
		{e.Admin, map[string]any{"source": 5}, 400, `"source" must be a string`},
		{e.Admin, map[string]any{}, 400, "source must be"},
		{e.Admin, map[string]any{"source": "https://evil.example/x"}, 400, "source must be"},
		{e.Admin, map[string]any{"source": "local://../etc"}, 400, "not a valid plugin name"},
		{e.Admin, map[string]any{"source": "local://a\x00b"}, 400, "NUL"},
		{e.Admin, map[string]any{"source": "local://nope"}, 404, `plugin "nope" not found`},
		{e.Admin, map[string]any{"source": "local://broken"}, 400, "plugin.yaml"},
		{e.Admin, map[string]any{"source": "local://picky"}, 400, "does not support runtime molecule-agent"},
		{e.Admin, map[string]any{"source": "github://acme/tools#main"}, 400, "40-hex commit"},
		{e.Admin, map[string]any{"source": "github://acme/tools"}, 400, "pinned"},
		{e.Admin, map[string]any{"source": "github://acme/missing#" + sha}, 502, "could not fetch acme/missing"},
		{e.Admin, map[string]any{"source": "github://acme/tools#" + sha}, 404, "not found in acme/tools"},
		{e.Admin, map[string]any{"source": "local://hello", "sha256": "xyz"}, 400, "64 hexadecimal"},
		{e.Admin, map[string]any{"source": "local://hello", "sha256": 5}, 400, `"sha256" must be a string`},
		{e.Admin, `{"source":"` + strings.Repeat("a", 2<<20) + `"}`, 413, ""},
		{"", map[string]any{"source": "local://hello"}, 401, ""},
		{"garbage", map[string]any{"source": "local://hello"}, 401, ""},
		{otherTok, map[string]any{"source": "local://hello"}, 403, ""},
	}
	for _, tc := range cases {
		r := e.Serve("POST", path, tc.bearer, tc.body)
		if r.Status != tc.status || !strings.Contains(r.ErrorMessage(t), tc.want) {
			t.Errorf("%v: %d %s; want %d %q", tc.body, r.Status, r.Body, tc.status, tc.want)
		}
		if strings.Contains(string(r.Body), "file://") || strings.Contains(string(r.Body), os.TempDir()) {
			t.Errorf("%v: response leaks a path: %s", tc.body, r.Body)
		}
	}
	for _, p := range []string{"/workspaces/not-a-uuid/plugins", "/workspaces/" + uuid.NewString() + "/plugins"} {
		if r := e.Serve("POST", p, e.Admin, map[string]any{"source": "local://hello"}); r.Status != 400 && r.Status != 404 {
			t.Errorf("%s: %d", p, r.Status)
		}
	}
	if w, p := fake.Total("write"), fake.Total("provision"); w != 0 || p != 0 {
		t.Errorf("bad inputs reached the workspace: %d writes, %d provisions", w, p)
	}
	if n := e.Count("workspace_plugins"); n != 0 {
		t.Errorf("%d installed rows", n)
	}
}

// The gate: an org allowlist that does not name the plugin blocks the
// install with 403 and PLUGIN_BLOCKED before anything is delivered, for a
// workspace deep in the tree, and even when the workspace has no
// container (no backend at all).
func TestPluginBlockedByOrgAllowlist(t *testing.T) {
	for _, noBackend := range []bool{false, true} {
		fake := provisionertest.New()
		fake.SetNoBackend(noBackend)
		e, commits := newPluginEnv(t, fake)
		first, _, _ := strings.Cut(commits, " ")
		root, _ := e.Workspace(&store.Workspace{Name: "root"})
		mid, _ := e.Workspace(&store.Workspace{Name: "mid", ParentID: &root})
		leaf, leafTok := e.Workspace(&store.Workspace{Name: "leaf", ParentID: &mid})
		other, _ := e.Workspace(&store.Workspace{Name: "other-org"})
		r := e.Serve("PUT", "/orgs/"+root.String()+"/plugins/allowlist", e.Admin, map[string]any{"plugins": []string{"hello"}, "enabled_by": "ops"})
		if r.Status != 200 {
			t.Fatal(r.Status)
		}
		for _, src := range []string{"local://evil", "github://acme/tools#" + first} {
			r = e.Serve("POST", "/workspaces/"+leaf.String()+"/plugins", leafTok, map[string]any{"source": src})
			if r.Status != 403 || string(r.Body) != `{"code":"forbidden","error":"plugin not on org allowlist"}` {
				t.Errorf("noBackend=%v %s: %d %s", noBackend, src, r.Status, r.Body)
			}
		}
		if w, p := fake.Total("write"), fake.Total("provision"); w != 0 || p != 0 || fake.Total("delete") != 0 {
			t.Errorf("noBackend=%v: blocked install reached the workspace (%d writes, %d provisions, %v)", noBackend, w, p, fake.Calls())
		}
		if n := e.Count("events", "event_type = 'PLUGIN_BLOCKED' AND workspace_id = '"+leaf.String()+"'"); n != 2 {
			t.Errorf("PLUGIN_BLOCKED events: %d", n)
		}
		if n := e.Count("workspace_plugins"); n != 0 {
			t.Errorf("blocked plugin recorded")
		}
		// Another org is not affected by this org's list.
		r = e.Serve("POST", "/workspaces/"+other.String()+"/plugins", e.Admin, map[string]any{"source": "local://evil"})
		wantOther := 201
		if noBackend {
			wantOther = 503
		}
		if r.Status != wantOther {
			t.Errorf("noBackend=%v other org: %d %s", noBackend, r.Status, r.Body)
		}
		// On the list: allowed.
		r = e.Serve("POST", "/workspaces/"+leaf.String()+"/plugins", e.Admin, map[string]any{"source": "local://hello"})
		if r.Status != wantOther {
			t.Errorf("noBackend=%v allowed plugin: %d %s", noBackend, r.Status, r.Body)
		}
		if noBackend && e.Count("workspace_plugins") != 0 {
			t.Error("undelivered plugin recorded as installed")
		}
	}
}
