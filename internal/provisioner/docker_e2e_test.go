package provisioner_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/apptest"
	"github.com/moleculesai/molecule/internal/provisioner"
	"github.com/moleculesai/molecule/internal/store"
	"github.com/moleculesai/molecule/internal/testutil"
)

const agentImage = "molecule/workspace-agent:latest"

// requireDocker skips without a daemon, except under CI where Docker is
// part of the machine and its absence is a failure.
func requireDocker(t *testing.T) {
	t.Helper()
	if err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").Run(); err != nil {
		testutil.Missing(t, fmt.Sprintf("a Docker daemon (%v)", err))
	}
}

var buildOnce sync.Once

// ensureAgentImage builds the agent image with workspace-template/build.sh
// when the daemon lacks it, or has one older than the rm-config command
// the files API needs (offline: FROM scratch).
func ensureAgentImage(t *testing.T) {
	t.Helper()
	buildOnce.Do(func() {
		if exec.Command("docker", "image", "inspect", agentImage).Run() == nil {
			if out, _ := docker("run", "--rm", "--network", "none", agentImage, "help"); strings.Contains(out, "rm-config") {
				return
			}
		}
		_, file, _, _ := runtime.Caller(0)
		script := filepath.Join(filepath.Dir(file), "..", "..", "workspace-template", "build.sh")
		out, err := exec.Command(script).CombinedOutput()
		if err != nil {
			t.Fatalf("build the agent image: %v\n%s", err, out)
		}
	})
	if exec.Command("docker", "image", "inspect", agentImage).Run() != nil {
		t.Fatalf("agent image %s is missing after build.sh", agentImage)
	}
}

func docker(args ...string) (string, error) {
	out, err := exec.Command("docker", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// cleanupDocker removes everything the test's workspaces and network left.
func cleanupDocker(t *testing.T, ids *[]uuid.UUID, network string) {
	for _, id := range *ids {
		if out, _ := docker("ps", "-aq", "--filter", "label="+provisioner.LabelWorkspaceID+"="+id.String()); out != "" {
			_, _ = docker(append([]string{"rm", "-f"}, strings.Fields(out)...)...)
		}
		_, _ = docker("volume", "rm", "-f", provisioner.ConfigVolume(id), provisioner.WorkspaceVolume(id))
	}
	if network != "" {
		_, _ = docker("network", "rm", network)
	}
}

type inspect struct {
	ID     string
	State  struct{ Running bool }
	Config struct {
		Env    []string
		Labels map[string]string
	}
	HostConfig struct {
		Memory         int64
		NanoCpus       int64
		Privileged     bool
		PidMode        string
		ReadonlyRootfs bool
		CapDrop        []string
		Binds          []string
	}
	Mounts []struct {
		Type, Name, Source, Destination string
	}
}

func inspectContainer(t *testing.T, name string) (inspect, bool) {
	out, err := docker("inspect", name)
	if err != nil {
		return inspect{}, false
	}
	var v []inspect
	if err := json.Unmarshal([]byte(out), &v); err != nil || len(v) != 1 {
		t.Fatalf("docker inspect %s: %v", name, err)
	}
	return v[0], true
}

func waitFor(t *testing.T, what string, timeout time.Duration, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// routeExists reports whether the platform serves method+path (routes of
// other areas land on main at their own pace). Probe with a path whose
// resource does not exist, so the probe has no effect.
func routeExists(in *apptest.Instance, method, path string) bool {
	r := in.Do(method, path, in.Admin, nil)
	return !(r.Status == http.StatusNotFound && strings.Contains(string(r.Body), "no such route"))
}

func TestDockerEndToEnd(t *testing.T) {
	requireDocker(t)
	ensureAgentImage(t)

	network := "molecule-e2e-" + uuid.NewString()[:8]
	var ids []uuid.UUID
	// Registered before the server starts, so it runs after the server
	// (and its loops) stopped: nothing recreates what it removes.
	t.Cleanup(func() { cleanupDocker(t, &ids, network) })

	orgDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(orgDir, "e2e-org"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(orgDir, "e2e-org", "org.yaml"), []byte(
		"name: E2E Org\nworkspaces:\n  - name: Template Tester\n    role: tester\n    system_prompt: You are the rebuilt tester.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := apptest.Start(t, apptest.Options{Env: map[string]string{
		"MOLECULE_ORG_TEMPLATES_DIR": orgDir,
		"MOLECULE_PROVISIONER":       "docker",
		"MOLECULE_LISTEN":            "0.0.0.0:0", // reachable from containers through the host gateway
		"MOLECULE_DOCKER_NETWORK":    network,
		"MOLECULE_SWEEP_INTERVAL":    "1s",
		"MOLECULE_TEMPLATES_DIR":     t.TempDir(),
	}})
	if got := in.App.Lifecycle.Backend(); got != "docker" {
		t.Fatalf("backend = %q", got)
	}
	live := in.Do("GET", "/admin/liveness", in.Admin, nil).Map(t)
	if live["provisioner"] != "docker" {
		t.Fatalf("/admin/liveness provisioner = %v", live["provisioner"])
	}
	ctx := context.Background()
	st := in.App.Store

	// A global secret and a workspace secret overriding the git identity.
	seal := func(owner, key, val string) []byte {
		b, err := in.App.Keyring.Seal([]byte(val), owner, key)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	// Global secrets first: POST /workspaces starts provisioning at once.
	if _, err := st.DB.ExecContext(ctx, `INSERT INTO global_secrets (key, sealed, key_id) VALUES ('E2E_SECRET', $1, $2), ('E2E_GLOBAL', $3, $2)`,
		seal("global", "E2E_SECRET", "global"), in.App.Keyring.ActiveID(), seal("global", "E2E_GLOBAL", "g")); err != nil {
		t.Fatal(err)
	}
	var wsID uuid.UUID
	viaAPI := routeExists(in, "POST", "/workspaces")
	if viaAPI {
		r := in.Do("POST", "/workspaces", in.Admin, map[string]any{
			"name": "E2E Agent", "role": "tester", "tier": 2,
			"secrets": map[string]string{"GIT_AUTHOR_NAME": "Custom Author", "E2E_SECRET": "workspace"},
		})
		if r.Status != http.StatusCreated {
			t.Fatalf("POST /workspaces: %d %s", r.Status, r.Body)
		}
		var w struct{ ID uuid.UUID }
		r.JSON(t, &w)
		wsID = w.ID
		ids = append(ids, wsID)
	} else {
		t.Log("POST /workspaces has not landed on this branch: inserting the row and calling Provision")
		wsID = uuid.New()
		ids = append(ids, wsID)
		err := st.Tx(ctx, func(tx *sql.Tx) error {
			if err := store.InsertWorkspaceTx(ctx, tx, &store.Workspace{ID: wsID, Name: "E2E Agent", Role: "tester", Tier: 2, Status: store.StatusProvisioning}); err != nil {
				return err
			}
			for k, v := range map[string]string{"GIT_AUTHOR_NAME": "Custom Author", "E2E_SECRET": "workspace"} {
				if _, err := tx.ExecContext(ctx, `INSERT INTO workspace_secrets (workspace_id, key, sealed, key_id) VALUES ($1,$2,$3,$4)`,
					wsID, k, seal(wsID.String(), k, v), in.App.Keyring.ActiveID()); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if !viaAPI {
		if err := in.App.Lifecycle.Provision(ctx, wsID); err != nil {
			t.Fatal(err)
		}
	}

	name := provisioner.ContainerName(wsID)
	var first inspect
	waitFor(t, "the agent container to run", 90*time.Second, func() bool {
		c, ok := inspectContainer(t, name)
		first = c
		return ok && c.State.Running
	})

	// The agent registers and goes online.
	registry := routeExists(in, "POST", "/registry/register")
	ws := func() *store.Workspace {
		w, err := st.GetWorkspace(ctx, wsID)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	if registry {
		waitFor(t, "the workspace to go online", 60*time.Second, func() bool { return ws().Status == store.StatusOnline })
	} else {
		t.Log("POST /registry/register has not landed: checking the agent answers at its stored URL instead of status online")
	}
	w := ws()
	if w.InstanceID != first.ID || !strings.HasPrefix(w.URL, "http://127.0.0.1:") {
		t.Fatalf("stored instance %q url %q; container %s", w.InstanceID, w.URL, first.ID)
	}

	// An A2A call is answered by the agent (through the proxy once it exists).
	rpc := map[string]any{"jsonrpc": "2.0", "id": "1", "method": "message/send", "params": map[string]any{
		"message": map[string]any{"role": "user", "messageId": "m1", "parts": []any{map[string]any{"kind": "text", "text": "ping e2e"}}}}}
	var answer []byte
	if routeExists(in, "POST", "/workspaces/"+uuid.NewString()+"/a2a") {
		r := in.Do("POST", "/workspaces/"+wsID.String()+"/a2a", in.Admin, rpc)
		if r.Status != http.StatusOK {
			t.Fatalf("A2A through the proxy: %d %s", r.Status, r.Body)
		}
		answer = r.Body
	} else {
		t.Log("the A2A proxy has not landed: calling the agent directly at its stored URL")
		body, _ := json.Marshal(rpc)
		var resp *http.Response
		waitFor(t, "the agent to answer", 30*time.Second, func() bool {
			var err error
			resp, err = http.Post(w.URL+"/", "application/json", bytes.NewReader(body))
			return err == nil
		})
		defer resp.Body.Close()
		buf := new(bytes.Buffer)
		_, _ = buf.ReadFrom(resp.Body)
		answer = buf.Bytes()
	}
	if !bytes.Contains(answer, []byte("echo: ping e2e")) {
		t.Fatalf("agent answer lacks the echo: %s", answer)
	}

	// docker inspect: §12 env order and precedence, labels, limits, no privilege.
	env := map[string]string{}
	pos := map[string]int{}
	for i, kv := range first.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k], pos[k] = v, i
	}
	order := []string{"WORKSPACE_ID", "PLATFORM_URL", "MOLECULE_URL", "WORKSPACE_CONFIG_PATH", "TIER", "PYTHONPATH", "E2E_GLOBAL", "E2E_SECRET", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL"}
	for i := 1; i < len(order); i++ {
		if _, ok := pos[order[i]]; !ok {
			t.Fatalf("env lacks %s: %v", order[i], first.Config.Env)
		}
		if pos[order[i-1]] > pos[order[i]] {
			t.Errorf("env order: %s after %s", order[i-1], order[i])
		}
	}
	want := map[string]string{
		"WORKSPACE_ID": wsID.String(), "WORKSPACE_CONFIG_PATH": "/configs", "TIER": "2", "PYTHONPATH": "/app",
		"E2E_SECRET": "workspace", "E2E_GLOBAL": "g",
		"GIT_AUTHOR_NAME": "Custom Author", "GIT_COMMITTER_NAME": "Molecule AI E2E Agent",
		"GIT_AUTHOR_EMAIL": "e2e-agent@agents.moleculesai.app", "GIT_COMMITTER_EMAIL": "e2e-agent@agents.moleculesai.app",
		"AGENT_URL": w.URL,
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	if !strings.HasPrefix(env["PLATFORM_URL"], "http://host.docker.internal:") || env["MOLECULE_URL"] != env["PLATFORM_URL"] {
		t.Errorf("platform URL as seen by the agent: %q / %q", env["PLATFORM_URL"], env["MOLECULE_URL"])
	}
	if first.Config.Labels[provisioner.LabelManaged] != "true" || first.Config.Labels[provisioner.LabelWorkspaceID] != wsID.String() {
		t.Errorf("labels %v", first.Config.Labels)
	}
	hc := first.HostConfig
	if hc.Memory != 512<<20 || hc.NanoCpus != 1e9 || hc.Privileged || hc.PidMode == "host" || hc.ReadonlyRootfs {
		t.Errorf("tier 2 host config: %+v", hc)
	}
	var configsVol bool
	for _, m := range first.Mounts {
		if strings.Contains(m.Source, "docker.sock") || strings.Contains(m.Destination, "docker.sock") {
			t.Errorf("docker socket mounted: %+v", m)
		}
		if m.Destination == "/configs" && m.Type == "volume" && m.Name == provisioner.ConfigVolume(wsID) {
			configsVol = true
		}
	}
	if !configsVol {
		t.Errorf("no %s volume at /configs: %+v", provisioner.ConfigVolume(wsID), first.Mounts)
	}

	// The files API on the live config volume.
	base := "/workspaces/" + wsID.String() + "/files"
	if r := in.Do("GET", base+"?depth=2", in.Admin, nil); r.Status != 200 || !bytes.Contains(r.Body, []byte(`"config.yaml"`)) || bytes.Contains(r.Body, []byte(".auth_token")) {
		t.Fatalf("list files: %d %s", r.Status, r.Body)
	}
	if r := in.Do("GET", base+"/.auth_token", in.Admin, nil); r.Status != http.StatusForbidden {
		t.Fatalf("read .auth_token: %d", r.Status)
	}
	if r := in.Do("PUT", base+"/skills/e2e/SKILL.md", in.Admin, map[string]any{"content": "# e2e skill\n"}); r.Status != 200 {
		t.Fatalf("write: %d %s", r.Status, r.Body)
	}
	if r := in.Do("GET", base+"/skills/e2e/SKILL.md", in.Admin, nil); r.Status != 200 || r.Map(t)["content"] != "# e2e skill\n" {
		t.Fatalf("read back: %d %s", r.Status, r.Body)
	}
	if r := in.Do("DELETE", base+"/skills", in.Admin, nil); r.Status != 200 {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	if r := in.Do("GET", base+"/skills/e2e/SKILL.md", in.Admin, nil); r.Status != 404 {
		t.Fatalf("read deleted: %d %s", r.Status, r.Body)
	}

	// Killing the container: offline, then the platform brings it back.
	if registry {
		if out, err := docker("kill", name); err != nil {
			t.Fatalf("docker kill: %v %s", err, out)
		}
		waitFor(t, "the workspace to come back online in a new container", 120*time.Second, func() bool {
			w := ws()
			c, ok := inspectContainer(t, name)
			return w.Status == store.StatusOnline && ok && c.State.Running && c.ID != first.ID
		})
		// The status passed through offline (the transition is brief, so
		// the stored event is the evidence), then provisioning again.
		var offline, reprovision int
		_ = st.DB.QueryRow(`SELECT count(*) FILTER (WHERE event_type = 'WORKSPACE_OFFLINE'),
			count(*) FILTER (WHERE event_type = 'WORKSPACE_PROVISIONING')
			FROM events WHERE workspace_id = $1`, wsID).Scan(&offline, &reprovision)
		if offline < 1 || reprovision < 2 {
			t.Errorf("after the kill: %d WORKSPACE_OFFLINE, %d WORKSPACE_PROVISIONING events", offline, reprovision)
		}
	} else {
		t.Log("registry has not landed: the kill/restart step needs an online workspace and is skipped")
	}

	// A lost config comes back from the org template (restart
	// {rebuild_config: true}, matched by role "tester").
	if registry && routeExists(in, "POST", "/workspaces/"+uuid.NewString()+"/restart") {
		for _, p := range []string{"/config.yaml", "/system-prompt.md"} {
			if r := in.Do("DELETE", base+p, in.Admin, nil); r.Status != 200 {
				t.Fatalf("delete %s: %d %s", p, r.Status, r.Body)
			}
		}
		before, _ := inspectContainer(t, name)
		if r := in.Do("POST", "/workspaces/"+wsID.String()+"/restart", in.Admin, map[string]any{"rebuild_config": true}); r.Status != http.StatusAccepted {
			t.Fatalf("restart rebuild_config: %d %s", r.Status, r.Body)
		}
		waitFor(t, "the restarted workspace to come back online", 90*time.Second, func() bool {
			c, ok := inspectContainer(t, name)
			return ok && c.State.Running && c.ID != before.ID && ws().Status == store.StatusOnline
		})
		r := in.Do("GET", base+"/system-prompt.md", in.Admin, nil)
		if r.Status != 200 || r.Map(t)["content"] != "You are the rebuilt tester." {
			t.Fatalf("rebuilt system prompt: %d %s", r.Status, r.Body)
		}
		if r := in.Do("GET", base+"/config.yaml", in.Admin, nil); r.Status != 200 || !strings.Contains(r.Map(t)["content"].(string), `template: "E2E Org"`) {
			t.Fatalf("rebuilt config.yaml: %d %s", r.Status, r.Body)
		}
	} else {
		t.Log("restart has not landed: the rebuild_config step is skipped")
	}

	// Delete removes the container and its volumes.
	if routeExists(in, "DELETE", "/workspaces/"+uuid.NewString()) {
		if r := in.Do("DELETE", "/workspaces/"+wsID.String()+"?confirm=true", in.Admin, nil); r.Status != 200 {
			t.Fatalf("DELETE: %d %s", r.Status, r.Body)
		}
	} else {
		if _, err := st.DB.Exec(`UPDATE workspaces SET status = 'removed' WHERE id = $1`, wsID); err != nil {
			t.Fatal(err)
		}
		if err := in.App.Lifecycle.Remove(ctx, wsID); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "container and volumes to be gone", 60*time.Second, func() bool {
		_, c := inspectContainer(t, name)
		_, v1 := docker("volume", "inspect", provisioner.ConfigVolume(wsID))
		_, v2 := docker("volume", "inspect", provisioner.WorkspaceVolume(wsID))
		return !c && v1 != nil && v2 != nil
	})
}
