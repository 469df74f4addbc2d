package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// MemoryEntry is a live (unexpired) row of workspace_memory.
type MemoryEntry struct {
	Key       string          `json:"key"`
	Value     json.RawMessage `json:"value"`
	Version   int64           `json:"version"`
	ExpiresAt *time.Time      `json:"expires_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// VersionConflict is returned by SetMemory when if_match_version does not
// match: Current is the stored version, 0 when the key is absent or expired.
type VersionConflict struct {
	Expected int64
	Current  int64
}

func (e *VersionConflict) Error() string {
	return fmt.Sprintf("memory version conflict: expected %d, current %d", e.Expected, e.Current)
}

// live is the visibility rule shared by every memory query: an expired row
// is as good as absent.
const live = `(expires_at IS NULL OR expires_at > now())`

// The hot memory statements are prepared once per pool (one round trip
// per call instead of parse-then-execute).
const (
	getMemorySQL = `SELECT key, value, version, expires_at, updated_at
		FROM workspace_memory WHERE workspace_id = $1 AND key = $2 AND ` + live
	upsertMemorySQL = `
		INSERT INTO workspace_memory AS m (workspace_id, key, value, expires_at)
		VALUES ($1, $2, $3, now() + make_interval(secs => $4))
		ON CONFLICT (workspace_id, key) DO UPDATE SET
			value = EXCLUDED.value,
			version = CASE WHEN m.expires_at IS NOT NULL AND m.expires_at <= now() THEN 1 ELSE m.version + 1 END,
			expires_at = EXCLUDED.expires_at,
			updated_at = now()
		RETURNING version`
	createMemorySQL = `
		INSERT INTO workspace_memory AS m (workspace_id, key, value, expires_at)
		VALUES ($1, $2, $3, now() + make_interval(secs => $4))
		ON CONFLICT (workspace_id, key) DO UPDATE SET
			value = EXCLUDED.value, version = 1, expires_at = EXCLUDED.expires_at,
			created_at = now(), updated_at = now()
		WHERE m.expires_at IS NOT NULL AND m.expires_at <= now()
		RETURNING version`
	updateMemorySQL = `
		UPDATE workspace_memory SET value = $3, version = version + 1,
			expires_at = now() + make_interval(secs => $4), updated_at = now()
		WHERE workspace_id = $1 AND key = $2 AND version = $5 AND ` + live + `
		RETURNING version`
)

// GetMemory returns one live entry or ErrNotFound.
func (s *Store) GetMemory(ctx context.Context, ws uuid.UUID, key string) (MemoryEntry, error) {
	var e MemoryEntry
	var value []byte
	st, err := s.stmts.get(ctx, s.DB, getMemorySQL)
	if err != nil {
		return e, err
	}
	err = st.QueryRowContext(ctx, ws, key).Scan(&e.Key, &value, &e.Version, &e.ExpiresAt, &e.UpdatedAt)
	if err != nil {
		return e, notFound(err)
	}
	e.Value = value
	return e, nil
}

// ListMemory returns a page of a workspace's live entries ordered by key.
func (s *Store) ListMemory(ctx context.Context, ws uuid.UUID, limit, offset int) ([]MemoryEntry, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT key, value, version, expires_at, updated_at
		FROM workspace_memory WHERE workspace_id = $1 AND `+live+` ORDER BY key LIMIT $2 OFFSET $3`, ws, limit, offset)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	out := []MemoryEntry{}
	for rows.Next() {
		var e MemoryEntry
		var value []byte
		if err := rows.Scan(&e.Key, &value, &e.Version, &e.ExpiresAt, &e.UpdatedAt); err != nil {
			return nil, wrap(err)
		}
		e.Value = value
		out = append(out, e)
	}
	return out, wrap(rows.Err())
}

// SetMemory writes key. ttl 0 means no expiry. ifMatch nil is an upsert
// (last write wins); ifMatch 0 creates only if the key is absent (or
// expired); ifMatch V writes only if the live stored version is V. Every
// write adds one to the version; a new (or resurrected expired) row starts
// at 1. A mismatch returns *VersionConflict.
//
// Each case is one statement, so Postgres row locking decides races: of N
// writers holding the same version exactly one matches, the others re-check
// the WHERE clause against the winner's row and miss.
func (s *Store) SetMemory(ctx context.Context, ws uuid.UUID, key string, value []byte, ttl time.Duration, ifMatch *int64) (int64, error) {
	var expires any
	if ttl > 0 {
		expires = ttl.Seconds()
	}
	var version int64
	query, args := upsertMemorySQL, []any{ws, key, value, expires}
	switch {
	case ifMatch == nil:
	case *ifMatch == 0:
		query = createMemorySQL
	default:
		query, args = updateMemorySQL, append(args, *ifMatch)
	}
	st, err := s.stmts.get(ctx, s.DB, query)
	if err != nil {
		return 0, err
	}
	err = st.QueryRowContext(ctx, args...).Scan(&version)
	if err == sql.ErrNoRows {
		cur, cerr := s.currentVersion(ctx, ws, key)
		if cerr != nil {
			return 0, cerr
		}
		return 0, &VersionConflict{Expected: *ifMatch, Current: cur}
	}
	if IsForeignKeyViolation(err) {
		return 0, ErrNotFound // the workspace vanished under us
	}
	return version, wrap(err)
}

func (s *Store) currentVersion(ctx context.Context, ws uuid.UUID, key string) (int64, error) {
	var v int64
	err := s.DB.QueryRowContext(ctx, `SELECT version FROM workspace_memory
		WHERE workspace_id = $1 AND key = $2 AND `+live, ws, key).Scan(&v)
	if err == sql.ErrNoRows {
		return 0, nil
	}
	return v, wrap(err)
}

// DeleteMemory removes a live key; absent or expired → ErrNotFound.
func (s *Store) DeleteMemory(ctx context.Context, ws uuid.UUID, key string) error {
	res, err := s.DB.ExecContext(ctx, `DELETE FROM workspace_memory
		WHERE workspace_id = $1 AND key = $2 AND `+live, ws, key)
	if err != nil {
		return wrap(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// PruneExpiredMemory deletes up to batch expired rows and returns how many.
// SKIP LOCKED lets several replicas prune at once without waiting on (or
// deleting) the same rows.
func (s *Store) PruneExpiredMemory(ctx context.Context, batch int) (int64, error) {
	res, err := s.DB.ExecContext(ctx, `DELETE FROM workspace_memory WHERE (workspace_id, key) IN (
		SELECT workspace_id, key FROM workspace_memory WHERE expires_at <= now()
		ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)`, batch)
	if err != nil {
		return 0, wrap(err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
