package store

import (
	"context"
	"database/sql"
	"time"

	"github.com/google/uuid"
)

// Delegation statuses (§7).
const (
	DelegationPending    = "pending"
	DelegationDispatched = "dispatched"
	DelegationCompleted  = "completed"
	DelegationFailed     = "failed"
)

// Delegation is a row of delegations. The list view carries previews only.
type Delegation struct {
	ID             uuid.UUID
	SourceID       uuid.UUID
	TargetID       uuid.UUID
	Task           string
	IdempotencyKey string // "" when none
	Status         string
	Result         string
	Error          string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

const delegationColumns = `id, source_id, target_id, task, COALESCE(idempotency_key, ''), status, result, error, created_at, updated_at`

func scanDelegation(row scanner) (*Delegation, error) {
	var d Delegation
	err := row.Scan(&d.ID, &d.SourceID, &d.TargetID, &d.Task, &d.IdempotencyKey, &d.Status, &d.Result,
		&d.Error, &d.CreatedAt, &d.UpdatedAt)
	return &d, err
}

// CreateDelegation inserts d as pending. When d carries an idempotency key
// already used by the same source, nothing is inserted and the existing
// delegation is returned with created=false.
func (s *Store) CreateDelegation(ctx context.Context, d *Delegation) (out *Delegation, created bool, err error) {
	var key sql.NullString
	if d.IdempotencyKey != "" {
		key = sql.NullString{String: d.IdempotencyKey, Valid: true}
	}
	out, err = scanDelegation(s.DB.QueryRowContext(ctx, `
		INSERT INTO delegations (id, source_id, target_id, task, idempotency_key, status)
		VALUES ($1, $2, $3, $4, $5, 'pending')
		ON CONFLICT (source_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
		RETURNING `+delegationColumns, d.ID, d.SourceID, d.TargetID, d.Task, key))
	if err == nil {
		return out, true, nil
	}
	if err != sql.ErrNoRows || !key.Valid {
		return nil, false, notFoundOrFK(err)
	}
	out, err = scanDelegation(s.DB.QueryRowContext(ctx, `SELECT `+delegationColumns+`
		FROM delegations WHERE source_id = $1 AND idempotency_key = $2`, d.SourceID, key))
	if err != nil {
		return nil, false, notFound(err)
	}
	return out, false, nil
}

func notFoundOrFK(err error) error {
	if IsForeignKeyViolation(err) {
		return ErrNotFound
	}
	return notFound(err)
}

// UpdateDelegation moves a delegation to status (with its result or error)
// only from an open state that precedes it: pending → dispatched, and
// pending|dispatched → completed|failed. It reports whether it moved, so a
// finished delegation is never reopened (by a late worker or the sweep).
func (s *Store) UpdateDelegation(ctx context.Context, id uuid.UUID, status, result, errMsg string) (bool, error) {
	from := []string{DelegationPending}
	if status == DelegationCompleted || status == DelegationFailed {
		from = append(from, DelegationDispatched)
	}
	res, err := s.DB.ExecContext(ctx, `UPDATE delegations SET status = $2, result = $3, error = $4, updated_at = now()
		WHERE id = $1 AND status = ANY($5::text[])`, id, status, result, errMsg, pqArray(from))
	if err != nil {
		return false, wrap(err)
	}
	n, err := res.RowsAffected()
	return n == 1, wrap(err)
}

// GetDelegation loads one delegation.
func (s *Store) GetDelegation(ctx context.Context, id uuid.UUID) (*Delegation, error) {
	d, err := scanDelegation(s.DB.QueryRowContext(ctx, `SELECT `+delegationColumns+` FROM delegations WHERE id = $1`, id))
	if err != nil {
		return nil, notFound(err)
	}
	return d, nil
}

// ListDelegations lists a source's delegations newest first, with the task
// cut to taskPreview and the result to resultPreview characters.
func (s *Store) ListDelegations(ctx context.Context, source uuid.UUID, limit, offset, taskPreview, resultPreview int) ([]Delegation, error) {
	rows, err := s.DB.QueryContext(ctx, `
		SELECT id, source_id, target_id, left(task, $4), COALESCE(idempotency_key, ''), status,
			left(result, $5), error, created_at, updated_at
		FROM delegations WHERE source_id = $1
		ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3`, source, limit, offset, taskPreview, resultPreview)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	out := []Delegation{}
	for rows.Next() {
		d, err := scanDelegation(rows)
		if err != nil {
			return nil, wrap(err)
		}
		out = append(out, *d)
	}
	return out, wrap(rows.Err())
}

// FailStaleDelegations fails open delegations untouched for longer than
// age (their worker died with a restart) and returns them. Each row is
// claimed by exactly one replica.
func (s *Store) FailStaleDelegations(ctx context.Context, age time.Duration, errMsg string) ([]Delegation, error) {
	rows, err := s.DB.QueryContext(ctx, `
		UPDATE delegations SET status = 'failed', error = $2, updated_at = now()
		WHERE id IN (
			SELECT id FROM delegations
			WHERE status IN ('pending', 'dispatched') AND updated_at < now() - make_interval(secs => $1)
			FOR UPDATE SKIP LOCKED LIMIT 500)
		RETURNING `+delegationColumns, age.Seconds(), errMsg)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	var out []Delegation
	for rows.Next() {
		d, err := scanDelegation(rows)
		if err != nil {
			return nil, wrap(err)
		}
		out = append(out, *d)
	}
	return out, wrap(rows.Err())
}
