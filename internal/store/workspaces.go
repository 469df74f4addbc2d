package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"
)

// Workspace statuses (§2).
const (
	StatusProvisioning  = "provisioning"
	StatusAwaitingAgent = "awaiting_agent"
	StatusOnline        = "online"
	StatusDegraded      = "degraded"
	StatusOffline       = "offline"
	StatusFailed        = "failed"
	StatusPaused        = "paused"
	StatusHibernated    = "hibernated"
	StatusRemoved       = "removed"
)

// Workspace is a row of workspaces. Billing fields are carried for the
// budget code but tagged out of JSON: they never appear in a workspace
// response (§2). Admin-only fields are stripped by the API layer.
type Workspace struct {
	ID                 uuid.UUID       `json:"id"`
	Name               string          `json:"name"`
	Role               string          `json:"role"`
	Tier               int             `json:"tier"`
	Runtime            string          `json:"runtime"`
	Status             string          `json:"status"`
	ParentID           *uuid.UUID      `json:"parent_id"`
	URL                string          `json:"url"`
	AgentCard          json.RawMessage `json:"agent_card"`
	ActiveTasks        int             `json:"active_tasks"`
	CurrentTask        string          `json:"current_task"`
	UptimeSeconds      int64           `json:"uptime_seconds"`
	LastHeartbeatAt    *time.Time      `json:"last_heartbeat_at"`
	LastErrorRate      float64         `json:"last_error_rate"`
	LastSampleError    string          `json:"last_sample_error,omitempty"`
	External           bool            `json:"external"`
	WorkspaceDir       string          `json:"workspace_dir"`
	WorkspaceAccess    string          `json:"workspace_access"`
	MaxConcurrentTasks int             `json:"max_concurrent_tasks"`
	X                  float64         `json:"x"`
	Y                  float64         `json:"y"`
	Collapsed          bool            `json:"collapsed"`
	Template           string          `json:"template,omitempty"`
	InstanceID         string          `json:"instance_id,omitempty"`
	BudgetLimit        *int64          `json:"-"`
	MonthlySpend       int64           `json:"-"`
	CreatedAt          time.Time       `json:"created_at"`
	UpdatedAt          time.Time       `json:"updated_at"`
}

// workspaceColumns is the select list matching scanWorkspace.
const workspaceColumns = `id, name, role, tier, runtime, status, parent_id, url, agent_card,
	active_tasks, current_task, uptime_seconds, last_heartbeat_at, last_error_rate,
	last_sample_error, external, workspace_dir, workspace_access, max_concurrent_tasks,
	x, y, collapsed, template, instance_id, budget_limit, monthly_spend, created_at, updated_at`

type scanner interface{ Scan(dest ...any) error }

func scanWorkspace(row scanner) (*Workspace, error) {
	var w Workspace
	var parent uuid.NullUUID
	var card []byte
	var budget sql.NullInt64
	err := row.Scan(&w.ID, &w.Name, &w.Role, &w.Tier, &w.Runtime, &w.Status, &parent, &w.URL, &card,
		&w.ActiveTasks, &w.CurrentTask, &w.UptimeSeconds, &w.LastHeartbeatAt, &w.LastErrorRate,
		&w.LastSampleError, &w.External, &w.WorkspaceDir, &w.WorkspaceAccess, &w.MaxConcurrentTasks,
		&w.X, &w.Y, &w.Collapsed, &w.Template, &w.InstanceID, &budget, &w.MonthlySpend, &w.CreatedAt, &w.UpdatedAt)
	if err != nil {
		return nil, err
	}
	if parent.Valid {
		p := parent.UUID
		w.ParentID = &p
	}
	if len(card) > 0 {
		w.AgentCard = card
	}
	if budget.Valid {
		b := budget.Int64
		w.BudgetLimit = &b
	}
	return &w, nil
}

// GetWorkspace loads a workspace that is not removed; removed or unknown →
// ErrNotFound.
func (s *Store) GetWorkspace(ctx context.Context, id uuid.UUID) (*Workspace, error) {
	w, err := scanWorkspace(s.DB.QueryRowContext(ctx,
		`SELECT `+workspaceColumns+` FROM workspaces WHERE id = $1 AND status <> 'removed'`, id))
	if err != nil {
		return nil, notFound(err)
	}
	return w, nil
}

// InsertWorkspaceTx writes a new workspace row inside the caller's
// transaction. ID, Name and Status must be set; zero tier/runtime/access get
// their defaults. A missing parent is ErrNotFound.
func InsertWorkspaceTx(ctx context.Context, tx *sql.Tx, w *Workspace) error {
	if w.Tier == 0 {
		w.Tier = 2
	}
	if w.Runtime == "" {
		w.Runtime = "molecule-agent"
	}
	if w.WorkspaceAccess == "" {
		w.WorkspaceAccess = "none"
	}
	if w.MaxConcurrentTasks == 0 {
		w.MaxConcurrentTasks = 1
	}
	if w.ParentID != nil {
		if err := lockLiveWorkspace(ctx, tx, *w.ParentID); err != nil {
			return err
		}
	}
	var parent uuid.NullUUID
	if w.ParentID != nil {
		parent = uuid.NullUUID{UUID: *w.ParentID, Valid: true}
	}
	var budget sql.NullInt64
	if w.BudgetLimit != nil {
		budget = sql.NullInt64{Int64: *w.BudgetLimit, Valid: true}
	}
	var card any
	if len(w.AgentCard) > 0 {
		card = []byte(w.AgentCard)
	}
	err := tx.QueryRowContext(ctx, `
		INSERT INTO workspaces (id, name, role, tier, runtime, status, parent_id, url, agent_card,
			external, workspace_dir, workspace_access, max_concurrent_tasks, x, y, collapsed,
			template, budget_limit)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)
		RETURNING created_at, updated_at`,
		w.ID, w.Name, w.Role, w.Tier, w.Runtime, w.Status, parent, w.URL, card,
		w.External, w.WorkspaceDir, w.WorkspaceAccess, w.MaxConcurrentTasks, w.X, w.Y, w.Collapsed,
		w.Template, budget).Scan(&w.CreatedAt, &w.UpdatedAt)
	return wrap(err)
}

// lockLiveWorkspace takes a row lock on a non-removed workspace, or returns
// ErrNotFound.
func lockLiveWorkspace(ctx context.Context, tx *sql.Tx, id uuid.UUID) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM workspaces WHERE id = $1 AND status <> 'removed' FOR UPDATE`, id).Scan(&one)
	return notFound(err)
}

func itoa(n int) string { return strconv.Itoa(n) }

func pqArray(v []string) any { return pq.Array(v) }

// AncestorChains returns, for each id, its chain [self, parent, …, root]
// over non-removed workspaces, in one query. An unknown or removed id gets
// no entry.
func (s *Store) AncestorChains(ctx context.Context, ids ...uuid.UUID) (map[uuid.UUID][]uuid.UUID, error) {
	strs := make([]string, len(ids))
	for i, id := range ids {
		strs[i] = id.String()
	}
	rows, err := s.DB.QueryContext(ctx, `
		WITH RECURSIVE up AS (
			SELECT w.id AS start, w.id, w.parent_id, 0 AS depth
			FROM workspaces w WHERE w.id = ANY($1::uuid[]) AND w.status <> 'removed'
			UNION ALL
			SELECT up.start, p.id, p.parent_id, up.depth + 1
			FROM up JOIN workspaces p ON p.id = up.parent_id
			WHERE up.depth < 64
		)
		SELECT start, id FROM up ORDER BY start, depth`, pqArray(strs))
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	out := make(map[uuid.UUID][]uuid.UUID, len(ids))
	for rows.Next() {
		var start, id uuid.UUID
		if err := rows.Scan(&start, &id); err != nil {
			return nil, wrap(err)
		}
		out[start] = append(out[start], id)
	}
	return out, wrap(rows.Err())
}
