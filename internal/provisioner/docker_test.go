package provisioner

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/google/uuid"
	"github.com/moleculesai/molecule/internal/testutil"
)

// dockerOrSkip returns a Docker backend on the local daemon; without one
// it skips (fails under CI=true). The agent image must exist (the
// end-to-end test in this package builds it; so does make agent-image).
func dockerOrSkip(t *testing.T) *Docker {
	t.Helper()
	d, err := NewDocker(DockerOptions{
		Images:     map[string]string{"molecule-agent": "molecule/workspace-agent:latest"},
		Network:    "molecule-test-" + uuid.NewString()[:8],
		PlatformID: "test-" + uuid.NewString()[:8],
	})
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err = d.Ping(ctx)
		cancel()
	}
	if err != nil {
		testutil.Missing(t, fmt.Sprintf("a Docker daemon (%v)", err))
	}
	if _, err := d.cli.ImageInspect(context.Background(), "molecule/workspace-agent:latest"); err != nil {
		out, berr := exec.Command("../../workspace-template/build.sh").CombinedOutput()
		if berr != nil {
			t.Fatalf("build agent image: %v\n%s", berr, out)
		}
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = d.SweepOrphans(ctx, func(context.Context, []uuid.UUID) (map[uuid.UUID]bool, error) { return nil, nil })
		_ = d.cli.NetworkRemove(ctx, d.o.Network)
		d.Close()
	})
	return d
}

func TestDockerBackendLifecycleTier1(t *testing.T) {
	d := dockerOrSkip(t)
	ctx := context.Background()
	id := uuid.New()
	files := map[string][]byte{".auth_token": []byte("tok\n"), "config.yaml": []byte("name: \"t\"\n"), "prompts/a.md": []byte("A")}
	inst, err := d.Start(ctx, Spec{WorkspaceID: id, Tier: 1, Env: []string{"WORKSPACE_ID=" + id.String()}, Files: files})
	if err != nil {
		t.Fatal(err)
	}
	info, err := d.cli.ContainerInspect(ctx, ContainerName(id))
	if err != nil || info.ID != inst.ID {
		t.Fatalf("inspect: %v", err)
	}
	if !info.HostConfig.ReadonlyRootfs || info.HostConfig.Memory != 256<<20 || info.HostConfig.Privileged {
		t.Errorf("tier 1 host config: ro=%v mem=%d priv=%v", info.HostConfig.ReadonlyRootfs, info.HostConfig.Memory, info.HostConfig.Privileged)
	}
	if up, err := d.IsRunning(ctx, id, inst.ID); !up || err != nil {
		t.Fatalf("running: %v %v", up, err)
	}
	// Config files landed before start, token 0600 and owned by the agent.
	rc, _, err := d.cli.CopyFromContainer(ctx, inst.ID, "/configs/.auth_token")
	if err != nil {
		t.Fatal(err)
	}
	hdrMode, hdrUID := tarHeader(t, rc)
	if hdrMode != 0o600 || hdrUID != agentUID {
		t.Errorf(".auth_token mode %o uid %d", hdrMode, hdrUID)
	}
	if b, err := d.ReadFile(ctx, id, "prompts/a.md"); err != nil || string(b) != "A" {
		t.Errorf("read: %q %v", b, err)
	}
	if _, err := d.ReadFile(ctx, id, "nope.md"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	if _, err := d.ReadFile(ctx, id, "prompts"); !errors.Is(err, ErrIsDir) {
		t.Errorf("dir: %v", err)
	}
	list, err := d.ListFiles(ctx, id, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range list {
		names = append(names, f.Path)
	}
	if strings.Join(names, ",") != ".auth_token,config.yaml,prompts" {
		t.Errorf("list depth 1: %v", names)
	}
	if deep, _ := d.ListFiles(ctx, id, "prompts", 2); len(deep) != 1 || deep[0].Path != "prompts/a.md" || deep[0].Size != 1 {
		t.Errorf("list prompts: %+v", deep)
	}
	if _, err := d.ListFiles(ctx, id, "config.yaml", 1); !errors.Is(err, ErrNotDir) {
		t.Errorf("list a file: %v", err)
	}

	// Stop: container kept, not running → (false, nil); files still reachable.
	if err := d.Stop(ctx, id, inst.ID); err != nil {
		t.Fatal(err)
	}
	if up, err := d.IsRunning(ctx, id, inst.ID); up || err != nil {
		t.Errorf("stopped: %v %v", up, err)
	}
	if err := d.WriteFiles(ctx, id, map[string][]byte{"new/x.md": []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := d.DeletePath(ctx, id, "prompts"); err != nil {
		t.Fatal(err)
	}
	if err := d.DeletePath(ctx, id, "prompts"); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete twice: %v", err)
	}
	// Remove: container and volumes gone; idempotent.
	if err := d.Remove(ctx, id, inst.ID); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(ctx, id, inst.ID); err != nil {
		t.Errorf("remove twice: %v", err)
	}
	if up, err := d.IsRunning(ctx, id, inst.ID); up || err != nil {
		t.Errorf("removed: %v %v", up, err)
	}
	if _, err := d.cli.VolumeInspect(ctx, ConfigVolume(id)); !client.IsErrNotFound(err) {
		t.Errorf("config volume left: %v", err)
	}
	// Files of a workspace without container use a helper, leaving nothing.
	if err := d.WriteFiles(ctx, id, map[string][]byte{"a.md": []byte("a")}); err != nil {
		t.Fatal(err)
	}
	if b, err := d.ReadFile(ctx, id, "a.md"); err != nil || string(b) != "a" {
		t.Errorf("helper read: %q %v", b, err)
	}
	helpers, _ := d.cli.ContainerList(ctx, container.ListOptions{All: true})
	for _, c := range helpers {
		if c.Labels[LabelWorkspaceID] == id.String() {
			t.Errorf("helper container left behind: %v", c.Names)
		}
	}
	_ = d.Remove(ctx, id, "")
}

func TestDockerIsRunningTransient(t *testing.T) {
	cli, err := client.NewClientWithOpts(client.WithHost("unix:///nonexistent/docker.sock"), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	d, _ := NewDocker(DockerOptions{Client: cli})
	up, err := d.IsRunning(context.Background(), uuid.New(), "")
	if !up || err == nil {
		t.Fatalf("unreachable daemon: (%v, %v), want (true, err)", up, err)
	}
}

func TestDockerOrphanSweep(t *testing.T) {
	d := dockerOrSkip(t)
	ctx := context.Background()
	live, dead := uuid.New(), uuid.New()
	for _, id := range []uuid.UUID{live, dead} {
		if _, err := d.Start(ctx, Spec{WorkspaceID: id, Tier: 2, Files: map[string][]byte{".auth_token": []byte("t")}}); err != nil {
			t.Fatal(err)
		}
	}
	// Another platform's container on the same daemon is never touched.
	other, _ := NewDocker(DockerOptions{Client: d.cli, Images: d.o.Images, Network: d.o.Network, PlatformID: "someone-else"})
	foreign := uuid.New()
	if _, err := other.Start(ctx, Spec{WorkspaceID: foreign, Tier: 2}); err != nil {
		t.Fatal(err)
	}
	defer other.Remove(ctx, foreign, "")
	isLive := func(_ context.Context, ids []uuid.UUID) (map[uuid.UUID]bool, error) {
		return map[uuid.UUID]bool{live: true}, nil
	}
	n, err := d.SweepOrphans(ctx, isLive)
	if err != nil {
		t.Fatal(err)
	}
	if n < 3 { // dead's container, config and workspace volumes
		t.Errorf("removed %d resources, want ≥ 3", n)
	}
	if up, _ := d.IsRunning(ctx, dead, ""); up {
		t.Errorf("orphan still running")
	}
	if up, _ := d.IsRunning(ctx, live, ""); !up {
		t.Errorf("live workspace's agent removed")
	}
	if up, _ := other.IsRunning(ctx, foreign, ""); !up {
		t.Errorf("another platform's container removed")
	}
	_ = d.Remove(ctx, live, "")
}
