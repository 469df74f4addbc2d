package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// StoredEvent is a row of events.
type StoredEvent struct {
	ID          int64           `json:"id"`
	Type        string          `json:"event"`
	WorkspaceID *uuid.UUID      `json:"workspace_id"`
	Payload     json.RawMessage `json:"payload"`
	CreatedAt   time.Time       `json:"timestamp"`
}

// InsertEvent stores an event and returns its id and time.
func (s *Store) InsertEvent(ctx context.Context, typ string, wsID uuid.UUID, payload []byte) (int64, time.Time, error) {
	var ws uuid.NullUUID
	if wsID != uuid.Nil {
		ws = uuid.NullUUID{UUID: wsID, Valid: true}
	}
	var id int64
	var at time.Time
	err := s.DB.QueryRowContext(ctx, `INSERT INTO events (event_type, workspace_id, payload)
		VALUES ($1, $2, $3) RETURNING id, created_at`, typ, ws, payload).Scan(&id, &at)
	return id, at, wrap(err)
}

// ListEvents returns stored events newest first; ws nil lists every
// workspace's.
func (s *Store) ListEvents(ctx context.Context, ws *uuid.UUID, limit, offset int) ([]StoredEvent, error) {
	q := `SELECT id, event_type, workspace_id, payload, created_at FROM events`
	args := []any{limit, offset}
	if ws != nil {
		q += ` WHERE workspace_id = $3`
		args = append(args, *ws)
	}
	return s.queryEvents(ctx, q+` ORDER BY id DESC LIMIT $1 OFFSET $2`, args...)
}

// EventsAfter returns up to limit stored events of ws with an id above
// after, oldest first: the replay of an SSE reconnect (Last-Event-ID).
func (s *Store) EventsAfter(ctx context.Context, ws uuid.UUID, after int64, limit int) ([]StoredEvent, error) {
	return s.queryEvents(ctx, `SELECT id, event_type, workspace_id, payload, created_at FROM events
		WHERE workspace_id = $1 AND id > $2 ORDER BY id LIMIT $3`, ws, after, limit)
}

func (s *Store) queryEvents(ctx context.Context, q string, args ...any) ([]StoredEvent, error) {
	rows, err := s.DB.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	out := []StoredEvent{}
	for rows.Next() {
		var e StoredEvent
		var ws uuid.NullUUID
		var payload []byte
		if err := rows.Scan(&e.ID, &e.Type, &ws, &payload, &e.CreatedAt); err != nil {
			return nil, wrap(err)
		}
		if ws.Valid {
			id := ws.UUID
			e.WorkspaceID = &id
		}
		e.Payload = payload
		e.CreatedAt = e.CreatedAt.UTC()
		out = append(out, e)
	}
	return out, wrap(rows.Err())
}

// PruneEvents deletes up to batch events created before cutoff and returns
// how many. SKIP LOCKED lets replicas prune side by side without
// contending for the same rows.
func (s *Store) PruneEvents(ctx context.Context, cutoff time.Time, batch int) (int64, error) {
	res, err := s.DB.ExecContext(ctx, `DELETE FROM events WHERE id IN (
		SELECT id FROM events WHERE created_at < $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)`, cutoff, batch)
	if err != nil {
		return 0, wrap(err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// WorkspaceExisted reports whether a workspace row exists, removed or
// not: stored events outlive the workspaces they describe.
func (s *Store) WorkspaceExisted(ctx context.Context, id uuid.UUID) (bool, error) {
	var ok bool
	err := s.DB.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM workspaces WHERE id = $1)`, id).Scan(&ok)
	return ok, wrap(err)
}
