package store

import (
	"context"
	"database/sql"
	"errors"

	"github.com/google/uuid"
)

// BeginProvisioning moves a non-removed, non-external workspace to
// `provisioning` and clears its URL (the old agent is going away). It
// returns the previous status. Removed or unknown → ErrNotFound.
func (s *Store) BeginProvisioning(ctx context.Context, id uuid.UUID) (prev string, err error) {
	err = s.DB.QueryRowContext(ctx, `
		UPDATE workspaces w SET status = 'provisioning', url = '', last_sample_error = '', updated_at = now()
		FROM (SELECT id, status FROM workspaces WHERE id = $1 AND status <> 'removed' FOR UPDATE) old
		WHERE w.id = old.id
		RETURNING old.status`, id).Scan(&prev)
	return prev, notFound(err)
}

// SetInstance stores the backend's instance id and the URL the platform
// reaches the agent at, unless the workspace was paused, hibernated or
// removed meanwhile (that wins; the caller then undoes the start). The
// agent may already have registered (online) by now: it starts before
// this runs. It reports whether the row was updated.
func (s *Store) SetInstance(ctx context.Context, id uuid.UUID, instanceID, url string) (bool, error) {
	res, err := s.DB.ExecContext(ctx, `UPDATE workspaces SET instance_id = $2, url = $3, updated_at = now()
		WHERE id = $1 AND status NOT IN ('paused', 'hibernated', 'removed')`, id, instanceID, url)
	if err != nil {
		return false, wrap(err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// FailProvisioning sets `failed` with the reason in last_sample_error,
// unless the workspace was removed or paused meanwhile. It reports whether
// the row changed.
func (s *Store) FailProvisioning(ctx context.Context, id uuid.UUID, reason string) (bool, error) {
	res, err := s.DB.ExecContext(ctx, `UPDATE workspaces SET status = 'failed', last_sample_error = $2, updated_at = now()
		WHERE id = $1 AND status NOT IN ('removed', 'paused')`, id, reason)
	if err != nil {
		return false, wrap(err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// ClaimDeadWorkspace moves a running-looking workspace (online, degraded,
// provisioning past the claim) to `offline`; exactly one caller among
// replicas wins the transition and then restarts it. Statuses that were
// not live answer false.
func (s *Store) ClaimDeadWorkspace(ctx context.Context, id uuid.UUID) (bool, error) {
	res, err := s.DB.ExecContext(ctx, `UPDATE workspaces SET status = 'offline', updated_at = now()
		WHERE id = $1 AND status IN ('online', 'degraded') AND NOT external`, id)
	if err != nil {
		return false, wrap(err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// LiveProvisionedWorkspaces lists non-external workspaces whose agent
// should be running (online or degraded) — the ones the container watch
// checks.
func (s *Store) LiveProvisionedWorkspaces(ctx context.Context, limit int) ([]uuid.UUID, error) {
	return queryIDs(ctx, s.DB, `SELECT id FROM workspaces
		WHERE NOT external AND status IN ('online', 'degraded') ORDER BY updated_at LIMIT $1`, limit)
}

// LiveWorkspaceIDs returns which of ids exist and are not removed.
func (s *Store) LiveWorkspaceIDs(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]bool, error) {
	live, err := queryIDs(ctx, s.DB, `SELECT id FROM workspaces WHERE id = ANY($1::uuid[]) AND status <> 'removed'`, uuidArray(ids))
	if err != nil {
		return nil, err
	}
	out := make(map[uuid.UUID]bool, len(live))
	for _, id := range live {
		out[id] = true
	}
	return out, nil
}

// TryAdvisoryLock runs fn while holding the transaction-level advisory lock
// key, if no other session holds it; otherwise it returns (false, nil)
// without running fn. Several replicas use it so that one of them runs a
// sweep at a time.
func (s *Store) TryAdvisoryLock(ctx context.Context, key int64, fn func(ctx context.Context) error) (bool, error) {
	ran := false
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		var got bool
		if err := tx.QueryRowContext(ctx, `SELECT pg_try_advisory_xact_lock($1)`, key).Scan(&got); err != nil {
			return wrap(err)
		}
		if !got {
			return nil
		}
		ran = true
		return fn(ctx)
	})
	if errors.Is(err, sql.ErrTxDone) {
		err = nil
	}
	return ran, err
}

// WorkspaceInstanceID returns the stored instance id of a workspace,
// removed ones included (teardown needs it). Unknown → ErrNotFound.
func (s *Store) WorkspaceInstanceID(ctx context.Context, id uuid.UUID) (string, error) {
	var inst string
	err := s.DB.QueryRowContext(ctx, `SELECT instance_id FROM workspaces WHERE id = $1`, id).Scan(&inst)
	return inst, notFound(err)
}
