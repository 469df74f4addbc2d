package provisioner

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/store"
	"github.com/moleculesai/molecule/pkg/provisionhook"
)

type mutFunc struct {
	name string
	fn   func(env map[string]string) error
}

func (m mutFunc) Name() string { return m.name }
func (m mutFunc) MutateEnv(_ context.Context, _ provisionhook.WorkspaceInfo, env map[string]string) error {
	return m.fn(env)
}

func keys(list []string) []string {
	out := make([]string, len(list))
	for i, kv := range list {
		out[i], _, _ = strings.Cut(kv, "=")
	}
	return out
}

func TestBuildEnvOrderAndPrecedence(t *testing.T) {
	id := uuid.MustParse("0f8fad5b-d9cb-469f-a165-70867728950e")
	ws := &store.Workspace{ID: id, Name: "Backend Dev", Tier: 3}
	reg := provisionhook.NewRegistry()
	reg.Register(mutFunc{"first", func(env map[string]string) error {
		env["HOOK_A"] = "1"
		env["E2E"] = env["E2E"] + "+hook"
		return nil
	}})
	reg.Register(mutFunc{"second", func(env map[string]string) error {
		if env["HOOK_A"] != "1" {
			return errors.New("did not see the previous mutator's output")
		}
		env["HOOK_B"] = "2"
		delete(env, "DROP_ME")
		return nil
	}})
	env, err := BuildEnv(context.Background(), EnvInput{
		Workspace: ws, PlatformURL: "http://host.docker.internal:8080",
		Global:  []KV{{"E2E", "global"}, {"GLOBAL_ONLY", "g"}, {"WORKSPACE_ID", "spoofed"}, {"DROP_ME", "x"}},
		Secrets: []KV{{"E2E", "workspace"}, {"GIT_COMMITTER_EMAIL", "me@example.com"}, {"AGENT_URL", "http://evil"}, {"bad name", "x"}},
		Hooks:   reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	got := keys(env.List())
	want := []string{"WORKSPACE_ID", "PLATFORM_URL", "MOLECULE_URL", "WORKSPACE_CONFIG_PATH", "TIER", "PYTHONPATH",
		"E2E", "GLOBAL_ONLY", "GIT_COMMITTER_EMAIL", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "HOOK_A", "HOOK_B"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("order:\n got %v\nwant %v", got, want)
	}
	checks := map[string]string{
		"WORKSPACE_ID": id.String(), "PLATFORM_URL": "http://host.docker.internal:8080", "MOLECULE_URL": "http://host.docker.internal:8080",
		"WORKSPACE_CONFIG_PATH": "/configs", "TIER": "3", "PYTHONPATH": "/app",
		"E2E": "workspace+hook", "GIT_COMMITTER_EMAIL": "me@example.com",
		"GIT_AUTHOR_NAME": "Molecule AI Backend Dev", "GIT_AUTHOR_EMAIL": "backend-dev@agents.moleculesai.app",
		"GIT_COMMITTER_NAME": "Molecule AI Backend Dev",
	}
	for k, v := range checks {
		if env.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, env.Get(k), v)
		}
	}
	if env.Has("AGENT_URL") || env.Has("DROP_ME") || env.Has("bad name") {
		t.Errorf("unexpected keys: %v", env.List())
	}
}

func TestBuildEnvMutatorErrorAborts(t *testing.T) {
	reg := provisionhook.NewRegistry()
	reg.Register(mutFunc{"broken", func(map[string]string) error { return errors.New("vault sealed") }})
	reg.Register(mutFunc{"never", func(map[string]string) error { t.Error("ran after an error"); return nil }})
	_, err := BuildEnv(context.Background(), EnvInput{Workspace: &store.Workspace{ID: uuid.New(), Name: "x", Tier: 2}, Hooks: reg})
	var me *provisionhook.MutatorError
	if !errors.As(err, &me) || me.Name != "broken" || !strings.Contains(err.Error(), "vault sealed") {
		t.Fatalf("err = %v", err)
	}
	// A nil registry is a no-op.
	if _, err := BuildEnv(context.Background(), EnvInput{Workspace: &store.Workspace{ID: uuid.New(), Name: "x", Tier: 2}}); err != nil {
		t.Fatal(err)
	}
}

func TestGitIdentity(t *testing.T) {
	id := uuid.MustParse("0f8fad5b-d9cb-469f-a165-70867728950e")
	cases := []struct{ name, full, email string }{
		{"", "", ""},
		{"   \t\n", "", ""},
		{"PM", "Molecule AI PM", "pm@agents.moleculesai.app"},
		{"  Data -- Analyst!! ", "Molecule AI Data -- Analyst!!", "data-analyst@agents.moleculesai.app"},
		{"QA <lead>\nx", "Molecule AI QA lead x", "qa-lead-x@agents.moleculesai.app"},
		{"Ünïcode Bot 2", "Molecule AI Ünïcode Bot 2", "n-code-bot-2@agents.moleculesai.app"},
		{"日本語", "Molecule AI 日本語", "ws-0f8fad5b@agents.moleculesai.app"},
	}
	for _, c := range cases {
		got := GitIdentity(c.name, id)
		if c.full == "" {
			if got != nil {
				t.Errorf("%q: identity %v, want none", c.name, got)
			}
			continue
		}
		if got["GIT_AUTHOR_NAME"] != c.full || got["GIT_COMMITTER_NAME"] != c.full ||
			got["GIT_AUTHOR_EMAIL"] != c.email || got["GIT_COMMITTER_EMAIL"] != c.email {
			t.Errorf("%q: %v, want %q <%s>", c.name, got, c.full, c.email)
		}
	}
}

func TestBuildEnvEmptyNameSetsNoIdentity(t *testing.T) {
	env, err := BuildEnv(context.Background(), EnvInput{Workspace: &store.Workspace{ID: uuid.New(), Name: "  ", Tier: 2}})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"} {
		if env.Has(k) {
			t.Errorf("%s set for an empty name", k)
		}
	}
}

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"Backend Dev": "backend-dev", "--a--b--": "a-b", "A_B.C": "a-b-c", "": "", "!!!": "", "x1 2Y": "x1-2y",
	} {
		if got := Slug(in); got != want {
			t.Errorf("Slug(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAgentPlatformURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:8080":        "http://host.docker.internal:8080",
		"http://localhost:9000/":       "http://host.docker.internal:9000",
		"http://0.0.0.0:1234":          "http://host.docker.internal:1234",
		"http://[::]:1234":             "http://host.docker.internal:1234",
		"https://molecule.example.com": "https://molecule.example.com",
		"http://10.0.0.5:8080":         "http://10.0.0.5:8080",
	} {
		if got := AgentPlatformURL(in); got != want {
			t.Errorf("AgentPlatformURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestResourcesForTier(t *testing.T) {
	const mib = 1 << 20
	cases := map[int]TierResources{
		1: {MemoryBytes: 256 * mib, ReadOnlyRootfs: true},
		2: {MemoryBytes: 512 * mib, NanoCPUs: 1e9},
		3: {MemoryBytes: 2048 * mib, NanoCPUs: 2e9},
		4: {MemoryBytes: 4096 * mib, NanoCPUs: 4e9},
		0: {MemoryBytes: 512 * mib, NanoCPUs: 1e9},
		9: {MemoryBytes: 512 * mib, NanoCPUs: 1e9},
	}
	for tier, want := range cases {
		if got := ResourcesForTier(tier); got != want {
			t.Errorf("tier %d: %+v, want %+v", tier, got, want)
		}
	}
}

func TestDockerContainerConfigPrivilege(t *testing.T) {
	id := uuid.New()
	for _, c := range []struct {
		tier  int
		allow bool
		priv  bool
	}{{1, true, false}, {3, true, false}, {4, false, false}, {4, true, true}} {
		d, err := NewDocker(DockerOptions{Images: map[string]string{"molecule-agent": "img"}, AllowPrivilegedTier4: c.allow, AgentAddr: AddrNetwork})
		if err != nil {
			t.Fatal(err)
		}
		cfg, host, _, url, err := d.containerConfig(Spec{WorkspaceID: id, Tier: c.tier, Env: []string{"AGENT_URL=http://spoof", "A=1"}}, "img", ContainerName(id))
		if err != nil {
			t.Fatal(err)
		}
		sock := false
		for _, m := range host.Mounts {
			if m.Source == dockerSocket {
				sock = true
			}
		}
		if host.Privileged != c.priv || sock != c.priv || (host.PidMode == "host") != c.priv {
			t.Errorf("tier %d allow=%v: privileged=%v socket=%v pid=%q", c.tier, c.allow, host.Privileged, sock, host.PidMode)
		}
		if c.tier == 1 && (!host.ReadonlyRootfs || host.Memory != 256<<20) {
			t.Errorf("tier 1: %+v", host)
		}
		if url != "http://"+ContainerName(id)+":8000" || cfg.Env[len(cfg.Env)-1] != "AGENT_URL="+url || strings.Contains(strings.Join(cfg.Env, " "), "spoof") {
			t.Errorf("agent url %q env %v", url, cfg.Env)
		}
	}
}
