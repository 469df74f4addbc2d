package store

import (
	"context"
	"database/sql"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"
)

// Channel is a row of workspace_channels (§17). ConfigSealed is the
// keyring-sealed JSON config (owner = workspace id, name = ChannelSecretName);
// it never leaves the server unmasked.
type Channel struct {
	ID            uuid.UUID
	WorkspaceID   uuid.UUID
	Type          string
	ConfigSealed  []byte
	KeyID         string
	AllowedUsers  []string
	Enabled       bool
	ChannelBudget *int64
	MessageCount  int64
	Source        string
	TemplateKey   string
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// ChannelSecretName is the associated-data name a channel's config is
// sealed under, binding the ciphertext to its row.
func ChannelSecretName(id uuid.UUID) string { return "channel:" + id.String() }

// TemplateChannelIDsTx maps the template keys of a workspace's
// template-owned channels to their ids.
func TemplateChannelIDsTx(ctx context.Context, tx *sql.Tx, wsID uuid.UUID) (map[string]uuid.UUID, error) {
	rows, err := tx.QueryContext(ctx, `SELECT template_key, id FROM workspace_channels
		WHERE workspace_id = $1 AND source = 'template'`, wsID)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	out := map[string]uuid.UUID{}
	for rows.Next() {
		var key string
		var id uuid.UUID
		if err := rows.Scan(&key, &id); err != nil {
			return nil, wrap(err)
		}
		out[key] = id
	}
	return out, wrap(rows.Err())
}

// UpsertTemplateChannelTx writes a template-owned channel, keyed by
// (workspace, TemplateKey). An existing row keeps its id, message count,
// budget and allowed users; type, config and enabled come from the template.
func UpsertTemplateChannelTx(ctx context.Context, tx *sql.Tx, ch *Channel) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO workspace_channels (id, workspace_id, channel_type, config_sealed, key_id, enabled, source, template_key)
		VALUES ($1,$2,$3,$4,$5,$6,'template',$7)
		ON CONFLICT (workspace_id, template_key) WHERE source = 'template' DO UPDATE SET
			channel_type = EXCLUDED.channel_type,
			config_sealed = EXCLUDED.config_sealed,
			key_id = EXCLUDED.key_id,
			enabled = EXCLUDED.enabled,
			updated_at = now()`,
		ch.ID, ch.WorkspaceID, ch.Type, ch.ConfigSealed, ch.KeyID, ch.Enabled, ch.TemplateKey)
	return wrap(err)
}

// DeleteTemplateChannelsExceptTx deletes the template-owned channels of a
// workspace whose key is not in keep.
func DeleteTemplateChannelsExceptTx(ctx context.Context, tx *sql.Tx, wsID uuid.UUID, keep []string) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM workspace_channels
		WHERE workspace_id = $1 AND source = 'template' AND NOT (template_key = ANY($2::text[]))`, wsID, pqArray(keep))
	return wrap(err)
}

// ListChannels returns a workspace's channels, oldest first.
func (s *Store) ListChannels(ctx context.Context, wsID uuid.UUID) ([]*Channel, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT id, workspace_id, channel_type, config_sealed, key_id,
		allowed_users, enabled, channel_budget, message_count, source, template_key, created_at, updated_at
		FROM workspace_channels WHERE workspace_id = $1 ORDER BY created_at, template_key`, wsID)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	out := []*Channel{}
	for rows.Next() {
		var ch Channel
		var users pq.StringArray
		var budget sql.NullInt64
		if err := rows.Scan(&ch.ID, &ch.WorkspaceID, &ch.Type, &ch.ConfigSealed, &ch.KeyID, &users, &ch.Enabled,
			&budget, &ch.MessageCount, &ch.Source, &ch.TemplateKey, &ch.CreatedAt, &ch.UpdatedAt); err != nil {
			return nil, wrap(err)
		}
		ch.AllowedUsers = users
		if budget.Valid {
			b := budget.Int64
			ch.ChannelBudget = &b
		}
		out = append(out, &ch)
	}
	return out, wrap(rows.Err())
}
