package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"
)

// Activity types the platform writes itself (§11). Agents report others.
const (
	ActivityA2ASend    = "a2a_send"
	ActivityA2AReceive = "a2a_receive"
	ActivityDelegation = "delegation"
)

// Activity is a row of the activity log.
type Activity struct {
	ID           int64           `json:"id"`
	WorkspaceID  uuid.UUID       `json:"workspace_id"`
	ActivityType string          `json:"activity_type"`
	Summary      string          `json:"summary"`
	CallerID     *uuid.UUID      `json:"caller_id"`
	TargetID     *uuid.UUID      `json:"target_id"`
	Method       string          `json:"method,omitempty"`
	StatusCode   *int            `json:"status_code"`
	DurationMS   *int64          `json:"duration_ms"`
	Details      json.RawMessage `json:"details"`
	CreatedAt    time.Time       `json:"created_at"`
}

const activityColumns = `id, workspace_id, activity_type, summary, caller_id, target_id, method, status_code, duration_ms, details, created_at`

// activityBatch bounds the rows of one INSERT.
const activityBatch = 5000

// InsertActivities writes rows with one INSERT … SELECT FROM unnest(…)
// per batch: one array parameter per column is far cheaper to encode and
// parse than ten parameters per row. CreatedAt is kept when set (the time
// of the call, not of the flush).
func (s *Store) InsertActivities(ctx context.Context, rows []Activity) error {
	for len(rows) > 0 {
		n := min(len(rows), activityBatch)
		if err := s.insertActivities(ctx, rows[:n]); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

func (s *Store) insertActivities(ctx context.Context, rows []Activity) error {
	n := len(rows)
	ws, typ, sum, method := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	caller, target := make([]sql.NullString, n), make([]sql.NullString, n)
	status, dur := make([]sql.NullInt64, n), make([]sql.NullInt64, n)
	details, at := make([]string, n), make([]string, n)
	now := time.Now()
	for i, r := range rows {
		ws[i], typ[i], sum[i], method[i] = r.WorkspaceID.String(), r.ActivityType, r.Summary, r.Method
		if r.CallerID != nil {
			caller[i] = sql.NullString{String: r.CallerID.String(), Valid: true}
		}
		if r.TargetID != nil {
			target[i] = sql.NullString{String: r.TargetID.String(), Valid: true}
		}
		if r.StatusCode != nil {
			status[i] = sql.NullInt64{Int64: int64(*r.StatusCode), Valid: true}
		}
		if r.DurationMS != nil {
			dur[i] = sql.NullInt64{Int64: *r.DurationMS, Valid: true}
		}
		details[i] = "{}"
		if len(r.Details) > 0 {
			details[i] = string(r.Details)
		}
		t := r.CreatedAt
		if t.IsZero() {
			t = now
		}
		at[i] = t.UTC().Format(time.RFC3339Nano)
	}
	_, err := s.DB.ExecContext(ctx, `
		INSERT INTO activity_log (workspace_id, activity_type, summary, caller_id, target_id,
			method, status_code, duration_ms, details, created_at)
		SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::uuid[],
			$6::text[], $7::int[], $8::bigint[], $9::jsonb[], $10::timestamptz[])`,
		pq.Array(ws), pq.Array(typ), pq.Array(sum), pq.Array(caller), pq.Array(target),
		pq.Array(method), pq.Array(status), pq.Array(dur), pq.Array(details), pq.Array(at))
	return wrap(err)
}

func nullUUID(p *uuid.UUID) uuid.NullUUID {
	if p == nil {
		return uuid.NullUUID{}
	}
	return uuid.NullUUID{UUID: *p, Valid: true}
}

// InsertActivity writes one row and fills its id and time.
func (s *Store) InsertActivity(ctx context.Context, a *Activity) error {
	details := []byte(a.Details)
	if len(details) == 0 {
		details = []byte(`{}`)
	}
	err := s.DB.QueryRowContext(ctx, `
		INSERT INTO activity_log (workspace_id, activity_type, summary, caller_id, target_id, method,
			status_code, duration_ms, details)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id, created_at`,
		a.WorkspaceID, a.ActivityType, a.Summary, nullUUID(a.CallerID), nullUUID(a.TargetID), a.Method,
		a.StatusCode, a.DurationMS, details).Scan(&a.ID, &a.CreatedAt)
	a.Details = details
	return wrap(err)
}

// ListActivity lists a workspace's activity newest first, optionally of
// one type.
func (s *Store) ListActivity(ctx context.Context, ws uuid.UUID, typ string, limit, offset int) ([]Activity, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT `+activityColumns+` FROM activity_log
		WHERE workspace_id = $1 AND ($2 = '' OR activity_type = $2)
		ORDER BY id DESC LIMIT $3 OFFSET $4`, ws, typ, limit, offset)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	out := []Activity{}
	for rows.Next() {
		var a Activity
		var caller, target uuid.NullUUID
		var details []byte
		if err := rows.Scan(&a.ID, &a.WorkspaceID, &a.ActivityType, &a.Summary, &caller, &target, &a.Method,
			&a.StatusCode, &a.DurationMS, &details, &a.CreatedAt); err != nil {
			return nil, wrap(err)
		}
		if caller.Valid {
			a.CallerID = &caller.UUID
		}
		if target.Valid {
			a.TargetID = &target.UUID
		}
		a.Details = details
		a.CreatedAt = a.CreatedAt.UTC()
		out = append(out, a)
	}
	return out, wrap(rows.Err())
}
