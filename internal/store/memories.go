package store

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Memory scopes (§9).
const (
	ScopeLocal  = "LOCAL"
	ScopeTeam   = "TEAM"
	ScopeGlobal = "GLOBAL"
)

// AgentMemory is a row of agent_memories.
type AgentMemory struct {
	ID          uuid.UUID `json:"id"`
	WorkspaceID uuid.UUID `json:"workspace_id"`
	Content     string    `json:"content"`
	Scope       string    `json:"scope"`
	Namespace   string    `json:"namespace"`
	CreatedAt   time.Time `json:"created_at"`
}

// InsertAgentMemory stores m (ID and CreatedAt are set). A missing
// workspace is ErrNotFound.
func (s *Store) InsertAgentMemory(ctx context.Context, m *AgentMemory) error {
	if m.ID == uuid.Nil {
		m.ID = uuid.New()
	}
	err := s.DB.QueryRowContext(ctx, `INSERT INTO agent_memories (id, workspace_id, content, scope, namespace)
		VALUES ($1, $2, $3, $4, $5) RETURNING created_at`,
		m.ID, m.WorkspaceID, m.Content, m.Scope, m.Namespace).Scan(&m.CreatedAt)
	if IsForeignKeyViolation(err) {
		return ErrNotFound
	}
	return wrap(err)
}

// MemoryQuery selects the agent memories a workspace may read.
type MemoryQuery struct {
	// Owner is the reading workspace; its own memories of every scope are
	// visible to it.
	Owner uuid.UUID
	// Team are the workspaces whose TEAM memories Owner reads (Owner
	// included); the caller decides membership (a2a.CanCommunicate).
	Team []uuid.UUID
	// Scope narrows to one scope ("" = everything visible): LOCAL = Owner's
	// own LOCAL memories, TEAM = the team's TEAM memories, GLOBAL = every
	// GLOBAL memory.
	Scope     string
	Namespace string // "" = any
	Query     string // full-text query ("" = newest first)
	Limit     int
	Offset    int
}

// SearchAgentMemories runs q: ranked by full-text relevance when Query is
// set, newest first otherwise.
func (s *Store) SearchAgentMemories(ctx context.Context, q MemoryQuery) ([]AgentMemory, error) {
	team := make([]string, 0, len(q.Team))
	for _, id := range q.Team {
		team = append(team, id.String())
	}
	var args []any
	arg := func(v any) string { // Postgres refuses unreferenced parameters
		args = append(args, v)
		return "$" + itoa(len(args))
	}
	var where []string
	switch q.Scope {
	case ScopeLocal:
		where = append(where, `workspace_id = `+arg(q.Owner)+` AND scope = 'LOCAL'`)
	case ScopeTeam:
		where = append(where, `scope = 'TEAM' AND workspace_id = ANY(`+arg(pqArray(team))+`::uuid[])`)
	case ScopeGlobal:
		where = append(where, `scope = 'GLOBAL'`)
	default:
		where = append(where, `(workspace_id = `+arg(q.Owner)+` OR (scope = 'TEAM' AND workspace_id = ANY(`+
			arg(pqArray(team))+`::uuid[])) OR scope = 'GLOBAL')`)
	}
	if q.Namespace != "" {
		where = append(where, `namespace = `+arg(q.Namespace))
	}
	order := `created_at DESC, id`
	if q.Query != "" {
		n := arg(q.Query)
		where = append(where, `search @@ websearch_to_tsquery('english', `+n+`)`)
		order = `ts_rank(search, websearch_to_tsquery('english', ` + n + `)) DESC, created_at DESC, id`
	}
	limit, offset := arg(q.Limit), arg(q.Offset)
	rows, err := s.DB.QueryContext(ctx, `SELECT id, workspace_id, content, scope, namespace, created_at
		FROM agent_memories WHERE `+strings.Join(where, " AND ")+`
		ORDER BY `+order+` LIMIT `+limit+` OFFSET `+offset, args...)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	out := []AgentMemory{}
	for rows.Next() {
		var m AgentMemory
		if err := rows.Scan(&m.ID, &m.WorkspaceID, &m.Content, &m.Scope, &m.Namespace, &m.CreatedAt); err != nil {
			return nil, wrap(err)
		}
		out = append(out, m)
	}
	return out, wrap(rows.Err())
}

// DeleteAgentMemory deletes memory id if ws owns it; otherwise ErrNotFound
// (another workspace's memory is indistinguishable from a missing one).
func (s *Store) DeleteAgentMemory(ctx context.Context, ws, id uuid.UUID) error {
	res, err := s.DB.ExecContext(ctx, `DELETE FROM agent_memories WHERE id = $1 AND workspace_id = $2`, id, ws)
	if err != nil {
		return wrap(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// TeamCandidates returns ws's team before access filtering: itself, its
// parent, its parent's other children and its own children (non-removed).
func (s *Store) TeamCandidates(ctx context.Context, ws uuid.UUID) ([]uuid.UUID, error) {
	return queryIDs(ctx, s.DB, `
		WITH me AS (SELECT id, parent_id FROM workspaces WHERE id = $1)
		SELECT w.id FROM workspaces w, me
		WHERE w.status <> 'removed'
		  AND (w.id = me.id OR w.id = me.parent_id OR w.parent_id = me.id
		       OR (me.parent_id IS NOT NULL AND w.parent_id = me.parent_id))`, ws)
}

// WorkspaceParents returns every non-removed workspace with its parent
// (uuid.Nil for a root), in one query: the org tree the WebSocket event
// filter computes access from.
func (s *Store) WorkspaceParents(ctx context.Context) (map[uuid.UUID]uuid.UUID, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT id, parent_id FROM workspaces WHERE status <> 'removed'`)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	out := map[uuid.UUID]uuid.UUID{}
	for rows.Next() {
		var id uuid.UUID
		var parent uuid.NullUUID
		if err := rows.Scan(&id, &parent); err != nil {
			return nil, wrap(err)
		}
		out[id] = parent.UUID
	}
	return out, wrap(rows.Err())
}
