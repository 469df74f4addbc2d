package store

import (
	"context"
	"database/sql"
	"time"

	"github.com/google/uuid"
)

// AllowlistEntry is a plugin an org allows (§15).
type AllowlistEntry struct {
	Name      string    `json:"name"`
	EnabledBy string    `json:"enabled_by"`
	CreatedAt time.Time `json:"created_at"`
}

// PluginAllowlist returns an org's allowlist sorted by name; empty means
// every plugin is allowed.
func (s *Store) PluginAllowlist(ctx context.Context, orgID uuid.UUID) ([]AllowlistEntry, error) {
	return pluginAllowlist(ctx, s.DB, orgID)
}

func pluginAllowlist(ctx context.Context, q querier, orgID uuid.UUID) ([]AllowlistEntry, error) {
	rows, err := q.QueryContext(ctx, `SELECT plugin_name, enabled_by, created_at FROM org_plugin_allowlist
		WHERE org_id = $1 ORDER BY plugin_name`, orgID)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	out := []AllowlistEntry{}
	for rows.Next() {
		var e AllowlistEntry
		if err := rows.Scan(&e.Name, &e.EnabledBy, &e.CreatedAt); err != nil {
			return nil, wrap(err)
		}
		out = append(out, e)
	}
	return out, wrap(rows.Err())
}

// ReplacePluginAllowlist makes an org's allowlist exactly names, in one
// transaction: readers see the old list or the new one, never a mix.
// Names already listed keep their enabled_by and created_at. A removed or
// unknown org is ErrNotFound.
func (s *Store) ReplacePluginAllowlist(ctx context.Context, orgID uuid.UUID, names []string, enabledBy string) ([]AllowlistEntry, error) {
	var out []AllowlistEntry
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		if err := lockLiveWorkspace(ctx, tx, orgID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM org_plugin_allowlist
			WHERE org_id = $1 AND NOT (plugin_name = ANY($2::text[]))`, orgID, pqArray(names)); err != nil {
			return wrap(err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO org_plugin_allowlist (org_id, plugin_name, enabled_by)
			SELECT $1, n, $3 FROM unnest($2::text[]) AS n
			ON CONFLICT (org_id, plugin_name) DO NOTHING`, orgID, pqArray(names), enabledBy); err != nil {
			return wrap(err)
		}
		var err error
		out, err = pluginAllowlist(ctx, tx, orgID)
		return err
	})
	return out, err
}

// PluginAllowed reports whether an org allows a plugin: its allowlist is
// empty or names it.
func (s *Store) PluginAllowed(ctx context.Context, orgID uuid.UUID, name string) (bool, error) {
	var allowed bool
	err := s.DB.QueryRowContext(ctx, `SELECT count(*) = 0 OR coalesce(bool_or(plugin_name = $2), false)
		FROM org_plugin_allowlist WHERE org_id = $1`, orgID, name).Scan(&allowed)
	return allowed, wrap(err)
}

// InstalledPlugin is a row of workspace_plugins.
type InstalledPlugin struct {
	Name        string    `json:"name"`
	Version     string    `json:"version"`
	Source      string    `json:"source"`
	SHA256      string    `json:"sha256"`
	Files       int       `json:"files"`
	Bytes       int64     `json:"bytes"`
	InstalledAt time.Time `json:"installed_at"`
}

// ListWorkspacePlugins returns the plugins installed in a workspace, by name.
func (s *Store) ListWorkspacePlugins(ctx context.Context, wsID uuid.UUID) ([]InstalledPlugin, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT name, version, source, sha256, files, bytes, installed_at
		FROM workspace_plugins WHERE workspace_id = $1 ORDER BY name`, wsID)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	out := []InstalledPlugin{}
	for rows.Next() {
		var p InstalledPlugin
		if err := rows.Scan(&p.Name, &p.Version, &p.Source, &p.SHA256, &p.Files, &p.Bytes, &p.InstalledAt); err != nil {
			return nil, wrap(err)
		}
		out = append(out, p)
	}
	return out, wrap(rows.Err())
}

// UpsertWorkspacePlugin records an installed plugin (a reinstall replaces
// the row). It reports whether the plugin was new to the workspace.
func (s *Store) UpsertWorkspacePlugin(ctx context.Context, wsID uuid.UUID, p *InstalledPlugin) (created bool, err error) {
	err = s.DB.QueryRowContext(ctx, `
		INSERT INTO workspace_plugins (workspace_id, name, version, source, sha256, files, bytes)
		VALUES ($1,$2,$3,$4,$5,$6,$7)
		ON CONFLICT (workspace_id, name) DO UPDATE SET version = EXCLUDED.version, source = EXCLUDED.source,
			sha256 = EXCLUDED.sha256, files = EXCLUDED.files, bytes = EXCLUDED.bytes, installed_at = now()
		RETURNING installed_at, (xmax = 0)`,
		wsID, p.Name, p.Version, p.Source, p.SHA256, p.Files, p.Bytes).Scan(&p.InstalledAt, &created)
	return created, wrap(err)
}

// GetWorkspacePlugin returns one installed plugin or ErrNotFound.
func (s *Store) GetWorkspacePlugin(ctx context.Context, wsID uuid.UUID, name string) (*InstalledPlugin, error) {
	var p InstalledPlugin
	err := s.DB.QueryRowContext(ctx, `SELECT name, version, source, sha256, files, bytes, installed_at
		FROM workspace_plugins WHERE workspace_id = $1 AND name = $2`, wsID, name).
		Scan(&p.Name, &p.Version, &p.Source, &p.SHA256, &p.Files, &p.Bytes, &p.InstalledAt)
	if err != nil {
		return nil, notFound(err)
	}
	return &p, nil
}

// DeleteWorkspacePlugin forgets an installed plugin; ErrNotFound if it was
// not installed.
func (s *Store) DeleteWorkspacePlugin(ctx context.Context, wsID uuid.UUID, name string) error {
	res, err := s.DB.ExecContext(ctx, `DELETE FROM workspace_plugins WHERE workspace_id = $1 AND name = $2`, wsID, name)
	if err != nil {
		return wrap(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}
