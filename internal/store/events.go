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
