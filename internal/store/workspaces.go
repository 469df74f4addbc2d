package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
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
	rows, err := s.DB.QueryContext(ctx, `
		WITH RECURSIVE up AS (
			SELECT w.id AS start, w.id, w.parent_id, 0 AS depth
			FROM workspaces w WHERE w.id = ANY($1::uuid[]) AND w.status <> 'removed'
			UNION ALL
			SELECT up.start, p.id, p.parent_id, up.depth + 1
			FROM up JOIN workspaces p ON p.id = up.parent_id
			WHERE up.depth < 64
		)
		SELECT start, id FROM up ORDER BY start, depth`, uuidArray(ids))
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

// ListWorkspaces returns every non-removed workspace, oldest first (the
// canvas draws the whole tree from it).
func (s *Store) ListWorkspaces(ctx context.Context) ([]*Workspace, error) {
	rows, err := s.DB.QueryContext(ctx,
		`SELECT `+workspaceColumns+` FROM workspaces WHERE status <> 'removed' ORDER BY created_at, id`)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	out := []*Workspace{}
	for rows.Next() {
		w, err := scanWorkspace(rows)
		if err != nil {
			return nil, wrap(err)
		}
		out = append(out, w)
	}
	return out, wrap(rows.Err())
}

// treeLockKey names the advisory lock that serializes changes to the shape
// of the tree (re-parenting, cascade removal) against each other and against
// creating a child, so a cycle check or a subtree walk never works on a
// tree that another transaction is changing.
const treeLockKey = 0x6d6f6c74726565 // "moltree"

// LockTreeSharedTx takes the tree lock in shared mode: adding a leaf under
// a parent never conflicts with another leaf, only with moves and removals.
func LockTreeSharedTx(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock_shared($1)`, int64(treeLockKey))
	return wrap(err)
}

func lockTreeTx(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(treeLockKey))
	return wrap(err)
}

// Errors of UpdateWorkspace the API shows as 400s.
var (
	ErrCycle          = errors.New("parent_id would make the workspace its own ancestor")
	ErrParentNotFound = errors.New("parent workspace not found")
)

// WorkspacePatch holds the fields a PATCH may change; nil leaves a field
// alone. ParentID set with ClearParent false moves the workspace under
// *ParentID; ClearParent makes it a root.
type WorkspacePatch struct {
	Name               *string
	Role               *string
	X, Y               *float64
	Collapsed          *bool
	ParentID           *uuid.UUID
	ClearParent        bool
	Tier               *int
	Runtime            *string
	WorkspaceDir       *string
	WorkspaceAccess    *string
	MaxConcurrentTasks *int
}

func (p WorkspacePatch) movesParent() bool { return p.ParentID != nil || p.ClearParent }

// UpdateWorkspace applies p and returns the stored row. A move is refused
// with ErrCycle when the new parent is the workspace or one of its
// descendants, and ErrParentNotFound when the parent is unknown or removed.
func (s *Store) UpdateWorkspace(ctx context.Context, id uuid.UUID, p WorkspacePatch) (*Workspace, error) {
	var out *Workspace
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		if p.movesParent() {
			if err := lockTreeTx(ctx, tx); err != nil {
				return err
			}
		}
		if err := lockLiveWorkspace(ctx, tx, id); err != nil {
			return err
		}
		sets := []string{"updated_at = now()"}
		args := []any{id}
		add := func(col string, v any) {
			args = append(args, v)
			sets = append(sets, col+" = $"+itoa(len(args)))
		}
		if p.Name != nil {
			add("name", *p.Name)
		}
		if p.Role != nil {
			add("role", *p.Role)
		}
		if p.X != nil {
			add("x", *p.X)
		}
		if p.Y != nil {
			add("y", *p.Y)
		}
		if p.Collapsed != nil {
			add("collapsed", *p.Collapsed)
		}
		if p.Tier != nil {
			add("tier", *p.Tier)
		}
		if p.Runtime != nil {
			add("runtime", *p.Runtime)
		}
		if p.WorkspaceDir != nil {
			add("workspace_dir", *p.WorkspaceDir)
		}
		if p.WorkspaceAccess != nil {
			add("workspace_access", *p.WorkspaceAccess)
		}
		if p.MaxConcurrentTasks != nil {
			add("max_concurrent_tasks", *p.MaxConcurrentTasks)
		}
		switch {
		case p.ClearParent:
			add("parent_id", nil)
		case p.ParentID != nil:
			if *p.ParentID == id {
				return ErrCycle
			}
			if err := lockLiveWorkspace(ctx, tx, *p.ParentID); err != nil {
				if errors.Is(err, ErrNotFound) {
					return ErrParentNotFound
				}
				return err
			}
			// The new parent's ancestry must not contain the workspace.
			var cycle bool
			if err := tx.QueryRowContext(ctx, `
				WITH RECURSIVE up AS (
					SELECT id, parent_id, 0 AS depth FROM workspaces WHERE id = $1
					UNION ALL
					SELECT p.id, p.parent_id, up.depth + 1 FROM up JOIN workspaces p ON p.id = up.parent_id
					WHERE up.depth < 1000
				)
				SELECT EXISTS (SELECT 1 FROM up WHERE id = $2)`, *p.ParentID, id).Scan(&cycle); err != nil {
				return wrap(err)
			}
			if cycle {
				return ErrCycle
			}
			add("parent_id", *p.ParentID)
		}
		var err error
		out, err = scanWorkspace(tx.QueryRowContext(ctx, `UPDATE workspaces SET `+strings.Join(sets, ", ")+
			` WHERE id = $1 RETURNING `+workspaceColumns, args...))
		return notFound(err)
	})
	return out, err
}

// StatusChange is one workspace's status transition.
type StatusChange struct {
	ID       uuid.UUID
	Name     string
	External bool
	Old      string
	New      string
}

// SetWorkspaceStatus moves a live workspace to status and returns the
// transition, in one statement. When from is given the row changes only if
// its current status is one of them (changed=false otherwise). Unknown or
// removed → ErrNotFound.
func (s *Store) SetWorkspaceStatus(ctx context.Context, id uuid.UUID, status string, from ...string) (StatusChange, bool, error) {
	ch := StatusChange{ID: id, New: status}
	var updated bool
	var allowed any
	if len(from) > 0 {
		allowed = pqArray(from)
	}
	err := s.DB.QueryRowContext(ctx, `
		WITH old AS (
			SELECT id, status FROM workspaces WHERE id = $1 AND status <> 'removed' FOR UPDATE
		), upd AS (
			UPDATE workspaces w SET status = $2,
				status_changed_at = CASE WHEN w.status <> $2 THEN now() ELSE w.status_changed_at END,
				updated_at = now()
			FROM old WHERE w.id = old.id AND ($3::text[] IS NULL OR old.status = ANY($3::text[]))
			RETURNING w.id
		)
		SELECT old.status, w.name, w.external, EXISTS (SELECT 1 FROM upd)
		FROM old JOIN workspaces w ON w.id = old.id`, id, status, allowed).
		Scan(&ch.Old, &ch.Name, &ch.External, &updated)
	if err != nil {
		return ch, false, notFound(err)
	}
	return ch, updated && ch.Old != status, nil
}
