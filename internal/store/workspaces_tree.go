package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/google/uuid"
)

// HasChildrenError refuses removing a workspace that still has children
// without the caller's confirmation.
type HasChildrenError struct {
	Children    int // direct children
	Descendants int // the whole subtree below the workspace
}

func (e *HasChildrenError) Error() string {
	return fmt.Sprintf("workspace has %d children (%d descendants)", e.Children, e.Descendants)
}

// subtreeSQL lists a live workspace and its live descendants, with each
// one's depth (0 for the root of the walk).
const subtreeSQL = `
	WITH RECURSIVE sub AS (
		SELECT id, 0 AS depth FROM workspaces WHERE id = $1 AND status <> 'removed'
		UNION ALL
		SELECT c.id, sub.depth + 1 FROM sub JOIN workspaces c ON c.parent_id = sub.id
		WHERE c.status <> 'removed' AND sub.depth < 1000
	)`

// SubtreeIDs returns the workspace and its live descendants, parents
// before children.
func (s *Store) SubtreeIDs(ctx context.Context, id uuid.UUID) ([]uuid.UUID, error) {
	return subtreeIDs(ctx, s.DB, id)
}

func subtreeIDs(ctx context.Context, q querier, id uuid.UUID) ([]uuid.UUID, error) {
	rows, err := q.QueryContext(ctx, subtreeSQL+` SELECT id FROM sub ORDER BY depth, id`, id)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	var ids []uuid.UUID
	for rows.Next() {
		var x uuid.UUID
		if err := rows.Scan(&x); err != nil {
			return nil, wrap(err)
		}
		ids = append(ids, x)
	}
	return ids, wrap(rows.Err())
}

// RemoveWorkspaceTree marks a workspace removed and, with cascade, every
// live descendant too, revoking all their tokens, in one transaction. A
// workspace with children and cascade=false is a *HasChildrenError and
// nothing changes. It returns the removed workspaces, the root first.
func (s *Store) RemoveWorkspaceTree(ctx context.Context, id uuid.UUID, cascade bool) ([]StatusChange, error) {
	var out []StatusChange
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		// Exclusive tree lock: no child can be created under, or moved into,
		// the subtree while it is being removed.
		if err := lockTreeTx(ctx, tx); err != nil {
			return err
		}
		ids, err := subtreeIDs(ctx, tx, id)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return ErrNotFound
		}
		if len(ids) > 1 && !cascade {
			var children int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM workspaces
				WHERE parent_id = $1 AND status <> 'removed'`, id).Scan(&children); err != nil {
				return wrap(err)
			}
			return &HasChildrenError{Children: children, Descendants: len(ids) - 1}
		}
		arr := uuidArray(ids)
		rows, err := tx.QueryContext(ctx, `
			WITH old AS (
				SELECT id, status FROM workspaces WHERE id = ANY($1::uuid[]) AND status <> 'removed' FOR UPDATE
			)
			UPDATE workspaces w SET status = 'removed', removed_at = now(), status_changed_at = now(),
				updated_at = now(), url = ''
			FROM old WHERE w.id = old.id
			RETURNING w.id, w.name, w.external, old.status`, arr)
		if err != nil {
			return wrap(err)
		}
		byID := map[uuid.UUID]StatusChange{}
		for rows.Next() {
			ch := StatusChange{New: StatusRemoved}
			if err := rows.Scan(&ch.ID, &ch.Name, &ch.External, &ch.Old); err != nil {
				rows.Close()
				return wrap(err)
			}
			byID[ch.ID] = ch
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return wrap(err)
		}
		for _, x := range ids {
			if ch, ok := byID[x]; ok {
				out = append(out, ch)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE auth_tokens SET revoked_at = now()
			WHERE workspace_id = ANY($1::uuid[]) AND revoked_at IS NULL`, arr); err != nil {
			return wrap(err)
		}
		// The removed workspaces' schedules stop in this same transaction.
		return DisableSchedulesTx(ctx, tx, ids)
	})
	return out, err
}

// PauseTree marks a workspace and its live descendants paused (those not
// already paused) and returns the transitions, parents first.
func (s *Store) PauseTree(ctx context.Context, id uuid.UUID) ([]StatusChange, error) {
	return s.setTreeStatus(ctx, id, `'paused'`, `old.status <> 'paused'`)
}

// ResumeTree moves the paused workspaces of a subtree back: a provisioned
// one to provisioning (its agent is about to start again) and an external
// one to awaiting_agent (its next heartbeat brings it online).
func (s *Store) ResumeTree(ctx context.Context, id uuid.UUID) ([]StatusChange, error) {
	return s.setTreeStatus(ctx, id,
		`CASE WHEN w.external THEN 'awaiting_agent' ELSE 'provisioning' END`, `old.status = 'paused'`)
}

func (s *Store) setTreeStatus(ctx context.Context, id uuid.UUID, newStatus, where string) ([]StatusChange, error) {
	var out []StatusChange
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		// Exclusive: two overlapping subtree walks would otherwise lock
		// rows in different orders. Pause and resume are rare.
		if err := lockTreeTx(ctx, tx); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, subtreeSQL+`,
			old AS (
				SELECT w.id, w.status, sub.depth FROM workspaces w JOIN sub ON sub.id = w.id FOR UPDATE OF w
			)
			UPDATE workspaces w SET status = `+newStatus+`, status_changed_at = now(), updated_at = now()
			FROM old WHERE w.id = old.id AND `+where+`
			RETURNING w.id, w.name, w.external, old.status, w.status, old.depth`, id)
		if err != nil {
			return wrap(err)
		}
		defer rows.Close()
		type row struct {
			ch    StatusChange
			depth int
		}
		var got []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.ch.ID, &r.ch.Name, &r.ch.External, &r.ch.Old, &r.ch.New, &r.depth); err != nil {
				return wrap(err)
			}
			got = append(got, r)
		}
		if err := rows.Err(); err != nil {
			return wrap(err)
		}
		// Parents first, so events read top-down.
		slices.SortStableFunc(got, func(a, b row) int { return a.depth - b.depth })
		for _, r := range got {
			out = append(out, r.ch)
		}
		return nil
	})
	return out, err
}
