package store

import (
	"context"
	"database/sql"
	"time"

	"github.com/google/uuid"
)

// Secret scopes as listed (§4).
const (
	SecretScopeWorkspace = "workspace"
	SecretScopeGlobal    = "global"
)

// GlobalSecretOwner is the owner bound into a global secret's associated
// data; a workspace secret's owner is its workspace id.
const GlobalSecretOwner = "global"

// SecretKey is a secret as listed: never its value.
type SecretKey struct {
	Key       string    `json:"key"`
	Scope     string    `json:"scope"`
	UpdatedAt time.Time `json:"updated_at"`
}

// SealedSecret is a stored secret for the provisioner to open and inject.
// Owner is the workspace id or GlobalSecretOwner (the associated data).
type SealedSecret struct {
	Owner  string
	Key    string
	Sealed []byte
	KeyID  string
}

// PutWorkspaceSecretTx upserts a sealed workspace secret inside a caller's
// transaction (workspace creation writes row and secrets together).
func PutWorkspaceSecretTx(ctx context.Context, tx *sql.Tx, wsID uuid.UUID, key string, sealed []byte, keyID string) error {
	return putWorkspaceSecret(ctx, tx, wsID, key, sealed, keyID)
}

func putWorkspaceSecret(ctx context.Context, q querier, wsID uuid.UUID, key string, sealed []byte, keyID string) error {
	_, err := q.ExecContext(ctx, `
		INSERT INTO workspace_secrets (workspace_id, key, sealed, key_id) VALUES ($1, $2, $3, $4)
		ON CONFLICT (workspace_id, key) DO UPDATE SET sealed = EXCLUDED.sealed, key_id = EXCLUDED.key_id,
			updated_at = now()`, wsID, key, sealed, keyID)
	return wrap(err)
}

// PutWorkspaceSecret upserts a sealed workspace secret.
func (s *Store) PutWorkspaceSecret(ctx context.Context, wsID uuid.UUID, key string, sealed []byte, keyID string) error {
	return putWorkspaceSecret(ctx, s.DB, wsID, key, sealed, keyID)
}

// DeleteWorkspaceSecret deletes one; absent → ErrNotFound.
func (s *Store) DeleteWorkspaceSecret(ctx context.Context, wsID uuid.UUID, key string) error {
	return s.deleteOne(ctx, `DELETE FROM workspace_secrets WHERE workspace_id = $1 AND key = $2`, wsID, key)
}

// PutGlobalSecret upserts a sealed global secret.
func (s *Store) PutGlobalSecret(ctx context.Context, key string, sealed []byte, keyID string) error {
	_, err := s.DB.ExecContext(ctx, `
		INSERT INTO global_secrets (key, sealed, key_id) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO UPDATE SET sealed = EXCLUDED.sealed, key_id = EXCLUDED.key_id, updated_at = now()`,
		key, sealed, keyID)
	return wrap(err)
}

// DeleteGlobalSecret deletes one; absent → ErrNotFound.
func (s *Store) DeleteGlobalSecret(ctx context.Context, key string) error {
	return s.deleteOne(ctx, `DELETE FROM global_secrets WHERE key = $1`, key)
}

func (s *Store) deleteOne(ctx context.Context, query string, args ...any) error {
	res, err := s.DB.ExecContext(ctx, query, args...)
	if err != nil {
		return wrap(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// ListGlobalSecretKeys lists global keys by name.
func (s *Store) ListGlobalSecretKeys(ctx context.Context) ([]SecretKey, error) {
	return s.listKeys(ctx, `SELECT key, 'global', updated_at FROM global_secrets ORDER BY key`)
}

// ListSecretKeys lists the keys a workspace sees: its own and the global
// ones it does not override (workspace keys win), by name.
func (s *Store) ListSecretKeys(ctx context.Context, wsID uuid.UUID) ([]SecretKey, error) {
	return s.listKeys(ctx, `
		SELECT key, 'workspace', updated_at FROM workspace_secrets WHERE workspace_id = $1
		UNION ALL
		SELECT g.key, 'global', g.updated_at FROM global_secrets g
		WHERE NOT EXISTS (SELECT 1 FROM workspace_secrets w WHERE w.workspace_id = $1 AND w.key = g.key)
		ORDER BY 1`, wsID)
}

func (s *Store) listKeys(ctx context.Context, query string, args ...any) ([]SecretKey, error) {
	rows, err := s.DB.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	out := []SecretKey{}
	for rows.Next() {
		var k SecretKey
		if err := rows.Scan(&k.Key, &k.Scope, &k.UpdatedAt); err != nil {
			return nil, wrap(err)
		}
		out = append(out, k)
	}
	return out, wrap(rows.Err())
}

// SealedSecrets returns the sealed secrets to inject into a workspace:
// globals first, then the workspace's own, so that applying them in order
// lets a workspace key win over a global one.
func (s *Store) SealedSecrets(ctx context.Context, wsID uuid.UUID) ([]SealedSecret, error) {
	rows, err := s.DB.QueryContext(ctx, `
		SELECT 'global', key, sealed, key_id, 0 FROM global_secrets
		UNION ALL
		SELECT workspace_id::text, key, sealed, key_id, 1 FROM workspace_secrets WHERE workspace_id = $1
		ORDER BY 5, 2`, wsID)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	var out []SealedSecret
	for rows.Next() {
		var x SealedSecret
		var order int
		if err := rows.Scan(&x.Owner, &x.Key, &x.Sealed, &x.KeyID, &order); err != nil {
			return nil, wrap(err)
		}
		out = append(out, x)
	}
	return out, wrap(rows.Err())
}
