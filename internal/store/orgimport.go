package store

import (
	"context"
	"database/sql"

	"github.com/google/uuid"
)

// LockOrgTemplateTx serializes imports of one template (transaction-scoped
// advisory lock), so two concurrent imports of the same template cannot
// both create its workspaces.
func LockOrgTemplateTx(ctx context.Context, tx *sql.Tx, template string) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('org-template:' || $1))`, template)
	return wrap(err)
}

// OrgTemplateWorkspacesTx returns the live (non-removed) workspaces an
// earlier import of template created, by template node name.
func OrgTemplateWorkspacesTx(ctx context.Context, tx *sql.Tx, template string) (map[string]*Workspace, error) {
	rows, err := tx.QueryContext(ctx, `SELECT org_node, `+workspaceColumns+` FROM workspaces
		WHERE org_template = $1 AND status <> 'removed'`, template)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	out := map[string]*Workspace{}
	for rows.Next() {
		var node string
		w, err := scanWorkspace(prefixScanner{rows, &node})
		if err != nil {
			return nil, wrap(err)
		}
		out[node] = w
	}
	return out, wrap(rows.Err())
}

// prefixScanner scans one extra leading column before a workspace row.
type prefixScanner struct {
	row   scanner
	first any
}

func (p prefixScanner) Scan(dest ...any) error {
	return p.row.Scan(append([]any{p.first}, dest...)...)
}

// SetOrgNodeTx records which template node created a workspace.
func SetOrgNodeTx(ctx context.Context, tx *sql.Tx, wsID uuid.UUID, template, node string) error {
	_, err := tx.ExecContext(ctx, `UPDATE workspaces SET org_template = $2, org_node = $3 WHERE id = $1`, wsID, template, node)
	return wrap(err)
}

// GlobalSecretSealed returns the sealed value of a global secret (§4) for
// ${VAR} expansion in org templates; ok is false when there is none. The
// caller opens it with the keyring (owner "global", name = key).
func (s *Store) GlobalSecretSealed(ctx context.Context, key string) (sealed []byte, ok bool, err error) {
	err = s.DB.QueryRowContext(ctx, `SELECT sealed FROM global_secrets WHERE key = $1`, key).Scan(&sealed)
	if err == sql.ErrNoRows {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, wrap(err)
	}
	return sealed, true, nil
}

// MarkProvisionFailed moves a workspace that is still provisioning to
// failed with a client-safe reason; it reports whether it did.
func (s *Store) MarkProvisionFailed(ctx context.Context, wsID uuid.UUID, reason string) (bool, error) {
	res, err := s.DB.ExecContext(ctx, `UPDATE workspaces SET status = 'failed', last_sample_error = $2,
		status_changed_at = now(), updated_at = now() WHERE id = $1 AND status = 'provisioning'`, wsID, reason)
	if err != nil {
		return false, wrap(err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// OrgNodeOf returns the template and node an import created a workspace
// from; both are empty for a workspace no import made.
func (s *Store) OrgNodeOf(ctx context.Context, wsID uuid.UUID) (template, node string, err error) {
	err = s.DB.QueryRowContext(ctx, `SELECT org_template, org_node FROM workspaces WHERE id = $1`, wsID).Scan(&template, &node)
	if err != nil {
		return "", "", notFound(err)
	}
	return template, node, nil
}
