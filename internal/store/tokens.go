package store

import (
	"context"
	"database/sql"
	"time"

	"github.com/google/uuid"
)

// Token kinds in auth_tokens.
const (
	TokenKindWorkspace = "workspace"
	TokenKindOrg       = "org"
)

// MaxLiveWorkspaceTokens bounds the live tokens of one workspace (§3).
const MaxLiveWorkspaceTokens = 50

// ErrTooManyTokens is returned when a workspace already has the maximum.
var ErrTooManyTokens = &LimitError{Msg: "a workspace may hold at most 50 live tokens; revoke one first"}

// LimitError is a conflict with a message meant for the client.
type LimitError struct{ Msg string }

func (e *LimitError) Error() string { return e.Msg }

// TokenRecord is what authenticating a bearer needs to know.
type TokenRecord struct {
	ID          uuid.UUID
	Kind        string
	WorkspaceID uuid.UUID // zero for org tokens
	Name        string
}

// TokenInfo is a token as listed (never the secret).
type TokenInfo struct {
	ID         uuid.UUID  `json:"id"`
	Name       string     `json:"name,omitempty"`
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// NewTokenRow is a token to insert; the caller generated the secret and
// passes only its hash and display prefix.
type NewTokenRow struct {
	ID          uuid.UUID
	Kind        string
	WorkspaceID uuid.UUID
	Name        string
	Hash        []byte
	Prefix      string
}

// LookupToken finds a live token by hash. A workspace token of a removed
// workspace is not live. Missing → ErrNotFound.
func (s *Store) LookupToken(ctx context.Context, hash []byte) (TokenRecord, error) {
	var r TokenRecord
	var ws uuid.NullUUID
	err := s.DB.QueryRowContext(ctx, `
		SELECT t.id, t.kind, t.workspace_id, t.name
		FROM auth_tokens t
		LEFT JOIN workspaces w ON w.id = t.workspace_id
		WHERE t.token_hash = $1 AND t.revoked_at IS NULL
		  AND (t.kind = 'org' OR (w.status IS NOT NULL AND w.status <> 'removed'))`,
		hash).Scan(&r.ID, &r.Kind, &ws, &r.Name)
	if err != nil {
		return TokenRecord{}, notFound(err)
	}
	r.WorkspaceID = ws.UUID
	return r, nil
}

func insertToken(ctx context.Context, q querier, t NewTokenRow) (TokenInfo, error) {
	var ws uuid.NullUUID
	if t.Kind == TokenKindWorkspace {
		ws = uuid.NullUUID{UUID: t.WorkspaceID, Valid: true}
	}
	info := TokenInfo{ID: t.ID, Name: t.Name, Prefix: t.Prefix}
	err := q.QueryRowContext(ctx, `
		INSERT INTO auth_tokens (id, kind, workspace_id, name, token_hash, prefix)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING created_at`,
		t.ID, t.Kind, ws, t.Name, t.Hash, t.Prefix).Scan(&info.CreatedAt)
	return info, wrap(err)
}

// CreateOrgToken stores a new org API token.
func (s *Store) CreateOrgToken(ctx context.Context, t NewTokenRow) (TokenInfo, error) {
	t.Kind = TokenKindOrg
	return insertToken(ctx, s.DB, t)
}

// ListOrgTokens lists live org tokens, newest first.
func (s *Store) ListOrgTokens(ctx context.Context, limit, offset int) ([]TokenInfo, int, error) {
	return s.listTokens(ctx, `kind = 'org'`, nil, limit, offset)
}

// RevokeOrgToken revokes an org token and, through the session check, every
// canvas session minted from it.
func (s *Store) RevokeOrgToken(ctx context.Context, id uuid.UUID) error {
	return s.revoke(ctx, `kind = 'org' AND id = $1`, id)
}

// ListWorkspaceTokens lists a workspace's live tokens, newest first, with the
// total count of live tokens.
func (s *Store) ListWorkspaceTokens(ctx context.Context, wsID uuid.UUID, limit, offset int) ([]TokenInfo, int, error) {
	return s.listTokens(ctx, `kind = 'workspace' AND workspace_id = $1`, []any{wsID}, limit, offset)
}

// CreateWorkspaceToken adds a token unless the workspace already holds the
// maximum. The workspace row is locked so concurrent creates cannot both
// pass the count.
func (s *Store) CreateWorkspaceToken(ctx context.Context, t NewTokenRow) (TokenInfo, error) {
	t.Kind = TokenKindWorkspace
	var info TokenInfo
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		if err := lockLiveWorkspace(ctx, tx, t.WorkspaceID); err != nil {
			return err
		}
		var live int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM auth_tokens
			WHERE workspace_id = $1 AND revoked_at IS NULL`, t.WorkspaceID).Scan(&live); err != nil {
			return wrap(err)
		}
		if live >= MaxLiveWorkspaceTokens {
			return ErrTooManyTokens
		}
		var err error
		info, err = insertToken(ctx, tx, t)
		return err
	})
	return info, err
}

// RotateWorkspaceToken revokes every live token of the workspace and stores
// the new one, atomically: each (re)provision hands the agent exactly one.
func (s *Store) RotateWorkspaceToken(ctx context.Context, t NewTokenRow) error {
	t.Kind = TokenKindWorkspace
	return s.Tx(ctx, func(tx *sql.Tx) error {
		if err := lockLiveWorkspace(ctx, tx, t.WorkspaceID); err != nil {
			return err
		}
		if err := RevokeWorkspaceTokensTx(ctx, tx, t.WorkspaceID); err != nil {
			return err
		}
		_, err := insertToken(ctx, tx, t)
		return err
	})
}

// InsertWorkspaceTokenTx stores a token inside a caller's transaction (used
// when a workspace and its first token are created together).
func InsertWorkspaceTokenTx(ctx context.Context, tx *sql.Tx, t NewTokenRow) error {
	t.Kind = TokenKindWorkspace
	_, err := insertToken(ctx, tx, t)
	return err
}

// RevokeWorkspaceTokensTx revokes all live tokens of a workspace.
func RevokeWorkspaceTokensTx(ctx context.Context, tx *sql.Tx, wsID uuid.UUID) error {
	_, err := tx.ExecContext(ctx, `UPDATE auth_tokens SET revoked_at = now()
		WHERE workspace_id = $1 AND revoked_at IS NULL`, wsID)
	return wrap(err)
}

// RevokeWorkspaceToken revokes one token of one workspace; another
// workspace's token id is ErrNotFound.
func (s *Store) RevokeWorkspaceToken(ctx context.Context, wsID, tokenID uuid.UUID) error {
	return s.revoke(ctx, `kind = 'workspace' AND workspace_id = $2 AND id = $1`, tokenID, wsID)
}

func (s *Store) revoke(ctx context.Context, where string, args ...any) error {
	res, err := s.DB.ExecContext(ctx, `UPDATE auth_tokens SET revoked_at = now()
		WHERE revoked_at IS NULL AND `+where, args...)
	if err != nil {
		return wrap(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

func (s *Store) listTokens(ctx context.Context, where string, args []any, limit, offset int) ([]TokenInfo, int, error) {
	n := len(args)
	args = append(args, limit, offset)
	rows, err := s.DB.QueryContext(ctx, `
		SELECT id, name, prefix, created_at, last_used_at, count(*) OVER ()
		FROM auth_tokens WHERE revoked_at IS NULL AND `+where+`
		ORDER BY created_at DESC, id
		LIMIT $`+itoa(n+1)+` OFFSET $`+itoa(n+2), args...)
	if err != nil {
		return nil, 0, wrap(err)
	}
	defer rows.Close()
	out := []TokenInfo{}
	total := 0
	for rows.Next() {
		var t TokenInfo
		if err := rows.Scan(&t.ID, &t.Name, &t.Prefix, &t.CreatedAt, &t.LastUsedAt, &total); err != nil {
			return nil, 0, wrap(err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, wrap(err)
	}
	if len(out) == 0 && offset > 0 {
		// The window function counts nothing past the end; count directly.
		if err := s.DB.QueryRowContext(ctx, `SELECT count(*) FROM auth_tokens
			WHERE revoked_at IS NULL AND `+where, args[:n]...).Scan(&total); err != nil {
			return nil, 0, wrap(err)
		}
	}
	return out, total, nil
}

// TouchTokens records last use for many tokens in one statement. The auth
// layer batches uses in memory and calls this periodically, so a request
// never writes a row.
func (s *Store) TouchTokens(ctx context.Context, used map[uuid.UUID]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	ids := make([]string, 0, len(used))
	times := make([]string, 0, len(used))
	for id, t := range used {
		ids = append(ids, id.String())
		times = append(times, t.UTC().Format(time.RFC3339Nano))
	}
	_, err := s.DB.ExecContext(ctx, `
		UPDATE auth_tokens t SET last_used_at = GREATEST(t.last_used_at, u.at)
		FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, at)
		WHERE t.id = u.id`, pqArray(ids), pqArray(times))
	return wrap(err)
}

// Canvas sessions.

// CreateSession stores a canvas session. sourceTokenID is the org token it
// was minted from (nil for the admin token).
func (s *Store) CreateSession(ctx context.Context, hash []byte, sourceTokenID *uuid.UUID, expires time.Time) error {
	var src uuid.NullUUID
	if sourceTokenID != nil {
		src = uuid.NullUUID{UUID: *sourceTokenID, Valid: true}
	}
	_, err := s.DB.ExecContext(ctx, `INSERT INTO canvas_sessions (id, token_hash, source_token_id, expires_at)
		VALUES ($1, $2, $3, $4)`, uuid.New(), hash, src, expires)
	return wrap(err)
}

// LookupSession reports whether a session is live: not revoked, not
// expired, and its source org token (if any) not revoked.
func (s *Store) LookupSession(ctx context.Context, hash []byte) (uuid.UUID, error) {
	var id uuid.UUID
	err := s.DB.QueryRowContext(ctx, `
		SELECT s.id FROM canvas_sessions s
		LEFT JOIN auth_tokens t ON t.id = s.source_token_id
		WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now()
		  AND (s.source_token_id IS NULL OR t.revoked_at IS NULL)`, hash).Scan(&id)
	return id, notFound(err)
}

// RevokeSession ends a session.
func (s *Store) RevokeSession(ctx context.Context, hash []byte) error {
	_, err := s.DB.ExecContext(ctx, `UPDATE canvas_sessions SET revoked_at = now()
		WHERE token_hash = $1 AND revoked_at IS NULL`, hash)
	return wrap(err)
}
