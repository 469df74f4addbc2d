package provisioner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
	"github.com/google/uuid"
)

// Labels on everything the Docker backend creates.
const (
	LabelManaged     = "molecule.managed"
	LabelWorkspaceID = "molecule.workspace_id"
	// LabelPlatform scopes the orphan sweep to one platform installation
	// (several platforms, or test runs, may share a daemon).
	LabelPlatform = "molecule.platform"
	// LabelRole is "agent", "files" (a short-lived config-volume helper)
	// or "volume".
	LabelRole = "molecule.role"

	agentPort     = "8000"
	agentUID      = 10001
	hostGateway   = "host.docker.internal"
	dockerSocket  = "/var/run/docker.sock"
	stopGraceSecs = 10
)

// Agent address modes: how the platform reaches an agent container.
const (
	// AddrPublished publishes :8000 on a random 127.0.0.1 port and uses
	// http://127.0.0.1:<port> — for a platform running on the host.
	AddrPublished = "published"
	// AddrNetwork uses http://ws-<id12>:8000 on the Docker network — for a
	// platform running in a container on that network.
	AddrNetwork = "network"
)

// DockerOptions configure the Docker backend.
type DockerOptions struct {
	Client *client.Client // nil: from the environment (DOCKER_HOST …)
	// Images maps runtime → image (MOLECULE_RUNTIME_IMAGES).
	Images  map[string]string
	Network string // MOLECULE_DOCKER_NETWORK
	// AllowPrivilegedTier4 lets tier 4 run privileged with the host PID
	// namespace and the Docker socket (MOLECULE_ALLOW_PRIVILEGED_TIER4).
	AllowPrivilegedTier4 bool
	// AgentAddr is AddrPublished (default) or AddrNetwork.
	AgentAddr string
	// PlatformID is this installation's LabelPlatform value.
	PlatformID string
	Log        *slog.Logger
}

// Docker runs each workspace's agent as a container on the local daemon.
//
// Addressing. The platform usually runs on the host (make run), where
// container names do not resolve and 127.0.0.1 inside a container is the
// container. So by default (AddrPublished) each agent's :8000 is published
// on a free 127.0.0.1 port chosen before the container is created, and
// http://127.0.0.1:<port> is both the URL stored for the workspace and the
// AGENT_URL the agent registers (only the host can reach it). The agent
// calls the platform back at host.docker.internal, which every container
// maps to the host gateway (ExtraHosts host-gateway), so the server must
// listen on an address the Docker bridge reaches (e.g. :8080, not
// 127.0.0.1:8080). A platform that runs in a container on the agents'
// network sets MOLECULE_DOCKER_AGENT_ADDR=network (agents at
// http://ws-<id12>:8000) and MOLECULE_AGENT_PLATFORM_URL to its own
// service URL.
//
// Isolation. Every container drops all capabilities, sets
// no-new-privileges, has a PID limit and its tier's memory/CPU; tier 1 also
// gets a read-only root fs (tmpfs /tmp and /home/agent). Only tier 4 with
// MOLECULE_ALLOW_PRIVILEGED_TIER4=true runs privileged, in the host PID
// namespace, with the Docker socket mounted.
type Docker struct {
	cli *client.Client
	o   DockerOptions
	log *slog.Logger
}

var _ Provisioner = (*Docker)(nil)

// NewDocker connects to the daemon (API version negotiated, so an older
// daemon such as 20.10 works) without contacting it yet.
func NewDocker(o DockerOptions) (*Docker, error) {
	cli := o.Client
	if cli == nil {
		var err error
		cli, err = client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return nil, err
		}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.AgentAddr == "" {
		o.AgentAddr = AddrPublished
	}
	if o.Network == "" {
		o.Network = "molecule-agents"
	}
	return &Docker{cli: cli, o: o, log: o.Log}, nil
}

// PlatformIDFromDSN derives a stable installation id from the database a
// platform uses (replicas share it; separate installations do not). The
// password never enters the hash input.
func PlatformIDFromDSN(dsn string) string {
	in := dsn
	if u, err := url.Parse(dsn); err == nil {
		u.User = url.User(u.User.Username())
		u.RawQuery = ""
		in = u.String()
	}
	sum := sha256.Sum256([]byte(in))
	return hex.EncodeToString(sum[:8])
}

// Ping reports whether the daemon answers (auto-selection, §12).
func (d *Docker) Ping(ctx context.Context) error {
	_, err := d.cli.Ping(ctx)
	return err
}

// Close releases the client.
func (d *Docker) Close() error { return d.cli.Close() }

// Name implements Provisioner.
func (d *Docker) Name() string { return "docker" }

// ContainerName is ws-<id[:12]>.
func ContainerName(wsID uuid.UUID) string { return "ws-" + wsID.String()[:12] }

// ConfigVolume is ws-<id[:12]>-configs.
func ConfigVolume(wsID uuid.UUID) string { return ContainerName(wsID) + "-configs" }

// WorkspaceVolume is ws-<id[:12]>-workspace (when no host dir is given).
func WorkspaceVolume(wsID uuid.UUID) string { return ContainerName(wsID) + "-workspace" }

// AgentPlatformURL rewrites a platform URL whose host is loopback or
// unspecified to host.docker.internal, which every agent container maps
// to the host gateway: inside a container 127.0.0.1 is the container.
func AgentPlatformURL(platformURL string) string {
	u, err := url.Parse(platformURL)
	if err != nil || u.Host == "" {
		return platformURL
	}
	host := u.Hostname()
	ip := net.ParseIP(host)
	if host == "localhost" || (ip != nil && (ip.IsLoopback() || ip.IsUnspecified())) || host == "" {
		port := u.Port()
		u.Host = hostGateway
		if port != "" {
			u.Host = net.JoinHostPort(hostGateway, port)
		}
	}
	return strings.TrimRight(u.String(), "/")
}

func (d *Docker) labels(wsID uuid.UUID, role string) map[string]string {
	return map[string]string{LabelManaged: "true", LabelWorkspaceID: wsID.String(), LabelPlatform: d.o.PlatformID, LabelRole: role}
}

// ImageMissingError: the runtime's image is not on the daemon (nothing is
// pulled: no registry may be reachable). Its message is safe to show.
type ImageMissingError struct{ Image string }

func (e *ImageMissingError) Error() string {
	return "agent image " + e.Image + " is not on the Docker daemon; build it with `make agent-image`"
}

// TierResources are a tier's limits (§12).
type TierResources struct {
	MemoryBytes    int64
	NanoCPUs       int64
	ReadOnlyRootfs bool
}

// ResourcesForTier maps tiers 1..4; anything else gets tier 2's.
func ResourcesForTier(tier int) TierResources {
	const mib = 1 << 20
	switch tier {
	case 1:
		return TierResources{MemoryBytes: 256 * mib, ReadOnlyRootfs: true}
	case 3:
		return TierResources{MemoryBytes: 2048 * mib, NanoCPUs: 2e9}
	case 4:
		return TierResources{MemoryBytes: 4096 * mib, NanoCPUs: 4e9}
	default:
		return TierResources{MemoryBytes: 512 * mib, NanoCPUs: 1e9}
	}
}

func (d *Docker) image(runtime string) (string, error) {
	if runtime == "" {
		runtime = "molecule-agent"
	}
	img, ok := d.o.Images[runtime]
	if !ok {
		return "", fmt.Errorf("no image for runtime %q (set MOLECULE_RUNTIME_IMAGES)", runtime)
	}
	return img, nil
}

// Start implements Provisioner: network, volumes, then the container is
// created (replacing an old one), the config files are copied into its
// config volume, and only then is it started.
func (d *Docker) Start(ctx context.Context, spec Spec) (Instance, error) {
	img, err := d.image(spec.Runtime)
	if err != nil {
		return Instance{}, err
	}
	if _, err := d.cli.ImageInspect(ctx, img); err != nil {
		if client.IsErrNotFound(err) {
			return Instance{}, &ImageMissingError{Image: img}
		}
		return Instance{}, err
	}
	if err := d.ensureNetwork(ctx); err != nil {
		return Instance{}, err
	}
	if err := d.ensureVolume(ctx, ConfigVolume(spec.WorkspaceID), spec.WorkspaceID); err != nil {
		return Instance{}, err
	}
	if spec.WorkspaceDir == "" {
		if err := d.ensureVolume(ctx, WorkspaceVolume(spec.WorkspaceID), spec.WorkspaceID); err != nil {
			return Instance{}, err
		}
	}
	name := ContainerName(spec.WorkspaceID)
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if err := d.removeContainer(ctx, name); err != nil {
			return Instance{}, err
		}
		inst, retry, err := d.createAndStart(ctx, spec, img, name)
		if err == nil {
			return inst, nil
		}
		lastErr = err
		if !retry {
			break
		}
		d.log.Warn("docker: start failed, retrying", "container", name, "err", err)
	}
	return Instance{}, lastErr
}

// createAndStart makes one attempt; retry is true for errors a new host
// port or a fresh name may fix (a port taken meanwhile, a concurrent
// replica creating the same name).
func (d *Docker) createAndStart(ctx context.Context, spec Spec, img, name string) (Instance, bool, error) {
	cfg, host, netCfg, agentURL, err := d.containerConfig(spec, img, name)
	if err != nil {
		return Instance{}, false, err
	}
	created, err := d.cli.ContainerCreate(ctx, cfg, host, netCfg, nil, name)
	if err != nil {
		return Instance{}, isConflict(err), err
	}
	if len(spec.Files) > 0 {
		if err := d.copyFiles(ctx, created.ID, spec.Files); err != nil {
			return Instance{}, false, err
		}
	}
	if err := d.cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return Instance{}, strings.Contains(err.Error(), "port is already allocated") || strings.Contains(err.Error(), "address already in use"), err
	}
	return Instance{ID: created.ID, URL: agentURL}, false, nil
}

func isConflict(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "conflict")
}

// containerConfig builds the container's configuration for spec.
func (d *Docker) containerConfig(spec Spec, img, name string) (*container.Config, *container.HostConfig, *network.NetworkingConfig, string, error) {
	agentURL := "http://" + name + ":" + agentPort
	port := nat.Port(agentPort + "/tcp")
	host := &container.HostConfig{
		NetworkMode:   container.NetworkMode(d.o.Network),
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		ExtraHosts:    []string{hostGateway + ":host-gateway"},
		SecurityOpt:   []string{"no-new-privileges:true"},
		CapDrop:       []string{"ALL"},
		Mounts: []mount.Mount{{
			Type: mount.TypeVolume, Source: ConfigVolume(spec.WorkspaceID), Target: "/configs",
		}},
	}
	if spec.WorkspaceDir != "" {
		host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeBind, Source: spec.WorkspaceDir, Target: "/workspace", ReadOnly: spec.ReadOnly})
	} else {
		host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeVolume, Source: WorkspaceVolume(spec.WorkspaceID), Target: "/workspace", ReadOnly: spec.ReadOnly})
	}
	res := ResourcesForTier(spec.Tier)
	host.Memory = res.MemoryBytes
	host.MemorySwap = res.MemoryBytes // no swap beyond the limit
	host.NanoCPUs = res.NanoCPUs
	pids := int64(1024)
	host.PidsLimit = &pids
	if res.ReadOnlyRootfs {
		host.ReadonlyRootfs = true
		host.Tmpfs = map[string]string{"/tmp": "rw,noexec,nosuid,size=64m", "/home/agent": "rw,noexec,nosuid,size=16m,uid=10001,gid=10001"}
	}
	if spec.Tier == 4 && d.o.AllowPrivilegedTier4 {
		host.Privileged = true
		host.PidMode = "host"
		host.CapDrop = nil
		host.SecurityOpt = nil
		host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeBind, Source: dockerSocket, Target: dockerSocket})
	}
	exposed := nat.PortSet{}
	if d.o.AgentAddr == AddrPublished {
		hp, err := freeLoopbackPort()
		if err != nil {
			return nil, nil, nil, "", err
		}
		host.PortBindings = nat.PortMap{port: []nat.PortBinding{{HostIP: "127.0.0.1", HostPort: strconv.Itoa(hp)}}}
		exposed[port] = struct{}{}
		agentURL = "http://127.0.0.1:" + strconv.Itoa(hp)
	}
	env := make([]string, 0, len(spec.Env)+1)
	for _, kv := range spec.Env {
		if !strings.HasPrefix(kv, "AGENT_URL=") {
			env = append(env, kv)
		}
	}
	// The agent registers this URL; the platform dials it.
	env = append(env, "AGENT_URL="+agentURL)
	cfg := &container.Config{
		Image: img, Hostname: name, Env: env, Labels: d.labels(spec.WorkspaceID, "agent"),
		ExposedPorts: exposed,
	}
	netCfg := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		d.o.Network: {Aliases: []string{name}},
	}}
	return cfg, host, netCfg, agentURL, nil
}

// freeLoopbackPort asks the kernel for a free port on 127.0.0.1. Another
// process may take it before Docker binds it; Start then retries.
func freeLoopbackPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (d *Docker) ensureNetwork(ctx context.Context) error {
	if _, err := d.cli.NetworkInspect(ctx, d.o.Network, network.InspectOptions{}); err == nil {
		return nil
	} else if !client.IsErrNotFound(err) {
		return err
	}
	_, err := d.cli.NetworkCreate(ctx, d.o.Network, network.CreateOptions{
		Driver: "bridge", Labels: map[string]string{LabelManaged: "true"},
	})
	if err != nil && isConflict(err) || err != nil && strings.Contains(err.Error(), "already exists") {
		return nil // another replica created it
	}
	return err
}

func (d *Docker) ensureVolume(ctx context.Context, name string, wsID uuid.UUID) error {
	_, err := d.cli.VolumeCreate(ctx, volume.CreateOptions{Name: name, Labels: d.labels(wsID, "volume")})
	return err // creating an existing volume is a no-op for the local driver
}

// removeContainer force-removes a container by name; absent is fine.
func (d *Docker) removeContainer(ctx context.Context, name string) error {
	err := d.cli.ContainerRemove(ctx, name, container.RemoveOptions{Force: true})
	if err == nil || client.IsErrNotFound(err) || strings.Contains(err.Error(), "is already in progress") {
		return nil
	}
	return err
}

// Stop implements Provisioner.
func (d *Docker) Stop(ctx context.Context, wsID uuid.UUID, _ string) error {
	grace := stopGraceSecs
	err := d.cli.ContainerStop(ctx, ContainerName(wsID), container.StopOptions{Timeout: &grace})
	if err == nil || client.IsErrNotFound(err) {
		return nil
	}
	return err
}

// Remove implements Provisioner: the container, its file helpers and its
// volumes (a host workspace_dir is never touched).
func (d *Docker) Remove(ctx context.Context, wsID uuid.UUID, _ string) error {
	list, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelWorkspaceID+"="+wsID.String()), filters.Arg("label", LabelManaged+"=true"))})
	if err != nil {
		return err
	}
	var errs []error
	if err := d.removeContainer(ctx, ContainerName(wsID)); err != nil {
		errs = append(errs, err)
	}
	for _, c := range list {
		if err := d.removeContainer(ctx, c.ID); err != nil {
			errs = append(errs, err)
		}
	}
	for _, v := range []string{ConfigVolume(wsID), WorkspaceVolume(wsID)} {
		if err := d.cli.VolumeRemove(ctx, v, true); err != nil && !client.IsErrNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// IsRunning implements Provisioner: not found → (false, nil); any other
// daemon error → (true, err).
func (d *Docker) IsRunning(ctx context.Context, wsID uuid.UUID, _ string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	info, err := d.cli.ContainerInspect(ctx, ContainerName(wsID))
	if err != nil {
		if client.IsErrNotFound(err) {
			return false, nil
		}
		return true, err
	}
	if info.State == nil {
		return true, errors.New("docker: container state missing")
	}
	return info.State.Running || info.State.Restarting, nil
}
