package store

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/google/uuid"
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

// activityBatch bounds one INSERT's parameters (10 per row, Postgres allows 65535).
const activityBatch = 1000

// InsertActivities writes rows in multi-row INSERTs. CreatedAt is kept
// when set (the time of the call, not of the flush).
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
	var b strings.Builder
	b.WriteString(`INSERT INTO activity_log (workspace_id, activity_type, summary, caller_id, target_id,
		method, status_code, duration_ms, details, created_at) VALUES `)
	args := make([]any, 0, len(rows)*10)
	for i, r := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		p := i * 10
		b.WriteString("($" + itoa(p+1))
		for j := 2; j <= 10; j++ {
			b.WriteString(",$" + itoa(p+j))
		}
		b.WriteByte(')')
		details := []byte(r.Details)
		if len(details) == 0 {
			details = []byte(`{}`)
		}
		at := r.CreatedAt
		if at.IsZero() {
			at = time.Now()
		}
		args = append(args, r.WorkspaceID, r.ActivityType, r.Summary, nullUUID(r.CallerID), nullUUID(r.TargetID),
			r.Method, r.StatusCode, r.DurationMS, details, at)
	}
	_, err := s.DB.ExecContext(ctx, b.String(), args...)
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
