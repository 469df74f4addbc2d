package provisioner

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/google/uuid"
)

// ErrIsDir means a file operation named a directory.
var ErrIsDir = errors.New("path is a directory")

// MaxReadFile caps ReadFile.
const MaxReadFile = 10 << 20

// Config-volume access goes through the Docker archive API on a container
// that mounts the volume: the agent container when it exists, otherwise a
// helper created from the agent image and never started (the daemon
// mounts volumes of stopped containers for copies). Deleting needs a
// process, so DeletePath runs the helper with `molecule-agent rm-config`.

// fileContainer returns a container mounting wsID's config volume and a
// release func that removes it when it is a helper.
func (d *Docker) fileContainer(ctx context.Context, wsID uuid.UUID, cmd []string) (string, func(), error) {
	if cmd == nil {
		if info, err := d.cli.ContainerInspect(ctx, ContainerName(wsID)); err == nil {
			return info.ID, func() {}, nil
		} else if !client.IsErrNotFound(err) {
			return "", nil, err
		}
	}
	img, err := d.image("molecule-agent")
	if err != nil {
		return "", nil, err
	}
	if err := d.ensureVolume(ctx, ConfigVolume(wsID), wsID); err != nil {
		return "", nil, err
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := ContainerName(wsID) + "-files-" + hex.EncodeToString(rnd[:])
	created, err := d.cli.ContainerCreate(ctx, &container.Config{
		Image: img, Cmd: cmd, Labels: d.labels(wsID, "files"), User: "10001:10001",
		Env: []string{"WORKSPACE_CONFIG_PATH=/configs"},
	}, &container.HostConfig{
		NetworkMode: "none", CapDrop: []string{"ALL"}, SecurityOpt: []string{"no-new-privileges:true"},
		Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: ConfigVolume(wsID), Target: "/configs"}},
	}, nil, nil, name)
	if err != nil {
		return "", nil, err
	}
	release := func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := d.removeContainer(rctx, created.ID); err != nil {
			d.log.Warn("docker: remove files helper (the orphan sweep retries)", "container", name, "err", err)
		}
	}
	return created.ID, release, nil
}

// copyFiles writes files under /configs of container id in one archive.
func (d *Docker) copyFiles(ctx context.Context, id string, files map[string][]byte) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	dirs := map[string]bool{}
	for _, p := range SortedKeys(files) {
		for dir := path.Dir(p); dir != "." && !dirs[dir]; dir = path.Dir(dir) {
			dirs[dir] = true
		}
	}
	dirList := SortedKeys(dirs)
	for _, dir := range dirList {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755,
			Uid: agentUID, Gid: agentUID, ModTime: now}); err != nil {
			return err
		}
	}
	for _, p := range SortedKeys(files) {
		mode := int64(0o644)
		if p == ".auth_token" {
			mode = 0o600
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: mode, Size: int64(len(files[p])),
			Uid: agentUID, Gid: agentUID, ModTime: now}); err != nil {
			return err
		}
		if _, err := tw.Write(files[p]); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return d.cli.CopyToContainer(ctx, id, "/configs", &buf, container.CopyToContainerOptions{})
}

// WriteFiles implements ConfigFiles.
func (d *Docker) WriteFiles(ctx context.Context, wsID uuid.UUID, files map[string][]byte) error {
	id, release, err := d.fileContainer(ctx, wsID, nil)
	if err != nil {
		return err
	}
	defer release()
	return d.copyFiles(ctx, id, files)
}

// readArchive streams /configs/<p> as a tar from the volume.
func (d *Docker) readArchive(ctx context.Context, wsID uuid.UUID, p string, fn func(tr *tar.Reader) error) error {
	id, release, err := d.fileContainer(ctx, wsID, nil)
	if err != nil {
		return err
	}
	defer release()
	rc, _, err := d.cli.CopyFromContainer(ctx, id, path.Join("/configs", p))
	if err != nil {
		if client.IsErrNotFound(err) {
			return ErrNotFound
		}
		return err
	}
	defer rc.Close()
	return fn(tar.NewReader(rc))
}

// ReadFile implements ConfigFiles.
func (d *Docker) ReadFile(ctx context.Context, wsID uuid.UUID, p string) ([]byte, error) {
	if p == "" {
		return nil, ErrIsDir
	}
	var out []byte
	err := d.readArchive(ctx, wsID, p, func(tr *tar.Reader) error {
		h, err := tr.Next()
		if err != nil {
			return err
		}
		if h.Typeflag == tar.TypeDir {
			return ErrIsDir
		}
		if h.Typeflag != tar.TypeReg {
			return ErrNotFound
		}
		if h.Size > MaxReadFile {
			return fmt.Errorf("file larger than %d bytes", MaxReadFile)
		}
		out, err = io.ReadAll(io.LimitReader(tr, MaxReadFile))
		return err
	})
	return out, err
}

// ListFiles implements ConfigFiles: entries under dir down to depth
// levels (1 = direct children), paths relative to /configs.
func (d *Docker) ListFiles(ctx context.Context, wsID uuid.UUID, dir string, depth int) ([]FileInfo, error) {
	if depth < 1 {
		depth = 1
	}
	var out []FileInfo
	err := d.readArchive(ctx, wsID, dir, func(tr *tar.Reader) error {
		first := true
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			name := strings.TrimSuffix(h.Name, "/")
			if first {
				first = false
				if h.Typeflag != tar.TypeDir {
					return ErrNotDir
				}
				continue // the directory itself
			}
			// Entries are "<base of dir>/rel…".
			_, rel, ok := strings.Cut(name, "/")
			if !ok || rel == "" {
				continue
			}
			if strings.Count(rel, "/")+1 > depth {
				continue
			}
			out = append(out, FileInfo{Path: path.Join(dir, rel), Size: h.Size, Dir: h.Typeflag == tar.TypeDir, ModTime: h.ModTime.UTC()})
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, err
}

// ErrNotDir means a listing named a file.
var ErrNotDir = errors.New("path is not a directory")

// DeletePath implements ConfigFiles.
func (d *Docker) DeletePath(ctx context.Context, wsID uuid.UUID, p string) error {
	if p == "" {
		return ErrIsDir
	}
	id, release, err := d.fileContainer(ctx, wsID, []string{"rm-config", p})
	if err != nil {
		return err
	}
	defer release()
	waitC, errC := d.cli.ContainerWait(ctx, id, container.WaitConditionNextExit)
	if err := d.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return err
	}
	select {
	case res := <-waitC:
		switch res.StatusCode {
		case 0:
			return nil
		case 3:
			return ErrNotFound
		case 2:
			return fmt.Errorf("rm-config refused the path or is unknown to the image (an image older than rm-config: rebuild it with make agent-image)")
		default:
			return fmt.Errorf("rm-config exited with %d", res.StatusCode)
		}
	case err := <-errC:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
