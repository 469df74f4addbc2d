package provisioner

import (
	"context"
	"errors"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/google/uuid"
)

// orphanSweeper is implemented by backends with resources to sweep.
type orphanSweeper interface {
	SweepOrphans(ctx context.Context, live func(context.Context, []uuid.UUID) (map[uuid.UUID]bool, error)) (int, error)
}

// helperMaxAge: a files helper older than this was leaked by a crash.
const helperMaxAge = 10 * time.Minute

// SweepOrphans removes this platform's containers (and volumes) whose
// workspace is removed or unknown, plus files helpers left behind by a
// crash. live reports which workspace ids are live. It returns how many
// containers and volumes it removed.
func (d *Docker) SweepOrphans(ctx context.Context, live func(context.Context, []uuid.UUID) (map[uuid.UUID]bool, error)) (int, error) {
	args := filters.NewArgs(filters.Arg("label", LabelManaged+"=true"), filters.Arg("label", LabelPlatform+"="+d.o.PlatformID))
	list, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: args})
	if err != nil {
		return 0, err
	}
	vols, err := d.cli.VolumeList(ctx, volume.ListOptions{Filters: args})
	if err != nil {
		return 0, err
	}
	var ids []uuid.UUID
	seen := map[uuid.UUID]bool{}
	add := func(label string) {
		if id, err := uuid.Parse(label); err == nil && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for _, c := range list {
		add(c.Labels[LabelWorkspaceID])
	}
	for _, v := range vols.Volumes {
		add(v.Labels[LabelWorkspaceID])
	}
	alive := map[uuid.UUID]bool{}
	if len(ids) > 0 {
		if alive, err = live(ctx, ids); err != nil {
			return 0, err
		}
	}
	n := 0
	var errs []error
	for _, c := range list {
		id, perr := uuid.Parse(c.Labels[LabelWorkspaceID])
		orphan := perr != nil || !alive[id]
		staleHelper := c.Labels[LabelRole] == "files" && time.Since(time.Unix(c.Created, 0)) > helperMaxAge
		if !orphan && !staleHelper {
			continue
		}
		if err := d.removeContainer(ctx, c.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	for _, v := range vols.Volumes {
		id, perr := uuid.Parse(v.Labels[LabelWorkspaceID])
		if perr == nil && alive[id] {
			continue
		}
		if err := d.cli.VolumeRemove(ctx, v.Name, true); err != nil && !client.IsErrNotFound(err) {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// sweepLockKey is the advisory lock that lets one replica sweep at a time.
const sweepLockKey = 0x6d6f6c6f72706868 // "molorphh"

// SweepOrphans is the orphan loop: one replica at a time (advisory lock)
// asks the backend to remove resources of removed or unknown workspaces.
func (m *Manager) SweepOrphans(ctx context.Context) error {
	sw, ok := m.o.Backend.(orphanSweeper)
	if !ok {
		return nil
	}
	_, err := m.o.Store.TryAdvisoryLock(ctx, sweepLockKey, func(ctx context.Context) error {
		n, err := sw.SweepOrphans(ctx, m.o.Store.LiveWorkspaceIDs)
		if n > 0 {
			m.log.Info("orphan sweep removed resources", "count", n)
		}
		return err
	})
	return err
}
