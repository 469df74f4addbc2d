package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// MaxMonthlySpend is the ceiling a reported monthly_spend is clamped to
// (§5: [0, 10^12] cents).
const MaxMonthlySpend int64 = 1_000_000_000_000

// Beat is one heartbeat as the API validated it. MonthlySpend is already
// clamped; it is written only when > 0 so an omitted or zero value never
// clears a stored spend. Degraded is the beat's own verdict (error_rate ≥
// 0.5 or a wedged runtime).
type Beat struct {
	WorkspaceID   uuid.UUID
	ErrorRate     float64
	SampleError   string
	ActiveTasks   int
	CurrentTask   string
	UptimeSeconds int64
	MonthlySpend  int64
	Degraded      bool
}

// BeatResult is what a heartbeat changed.
type BeatResult struct {
	OldStatus string
	Status    string
	OldTask   string
}

// heartbeatSQL does the whole heartbeat in one statement (one round trip
// with a prepared statement): it locks the row, computes the new status
// from the old one, writes the beat and returns both statuses and the
// previous task. Status rules (§5): paused and hibernated workspaces keep
// their status (a beat from an agent that should be stopped does not
// resurrect it); a degraded beat degrades; a degraded workspace recovers
// only below error_rate 0.1; everything else live becomes online.
const heartbeatSQL = `
	WITH old AS (
		SELECT id, status, current_task FROM workspaces WHERE id = $1 AND status <> 'removed' FOR UPDATE
	), nxt AS (
		SELECT id, status AS old_status, current_task AS old_task,
			CASE
				WHEN status IN ('paused', 'hibernated') THEN status
				WHEN $8::boolean THEN 'degraded'
				WHEN status = 'degraded' AND $2::double precision >= 0.1 THEN 'degraded'
				ELSE 'online'
			END AS new_status
		FROM old
	)
	UPDATE workspaces w SET
		status = nxt.new_status,
		status_changed_at = CASE WHEN nxt.new_status <> nxt.old_status THEN now() ELSE w.status_changed_at END,
		last_heartbeat_at = now(),
		last_error_rate = $2, last_sample_error = $3, active_tasks = $4, current_task = $5,
		uptime_seconds = $6,
		monthly_spend = CASE WHEN $7::bigint > 0 THEN $7::bigint ELSE w.monthly_spend END
	FROM nxt WHERE w.id = nxt.id
	RETURNING nxt.old_status, w.status, nxt.old_task`

// stmtCache prepares a statement once per pool; database/sql re-prepares it
// on each connection as needed. A prepared statement is what makes the
// heartbeat one round trip with lib/pq (an unprepared query with arguments
// costs a Parse round trip first).
type stmtCache struct {
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

func (c *stmtCache) get(ctx context.Context, db *sql.DB, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stmts[query]; ok {
		return st, nil
	}
	st, err := db.PrepareContext(ctx, query)
	if err != nil {
		return nil, wrap(err)
	}
	if c.stmts == nil {
		c.stmts = map[string]*sql.Stmt{}
	}
	c.stmts[query] = st
	return st, nil
}

// Heartbeat records a beat. Unknown or removed → ErrNotFound.
func (s *Store) Heartbeat(ctx context.Context, b Beat) (BeatResult, error) {
	st, err := s.stmts.get(ctx, s.DB, heartbeatSQL)
	if err != nil {
		return BeatResult{}, err
	}
	var r BeatResult
	err = st.QueryRowContext(ctx, b.WorkspaceID, b.ErrorRate, b.SampleError, b.ActiveTasks, b.CurrentTask,
		b.UptimeSeconds, b.MonthlySpend, b.Degraded).Scan(&r.OldStatus, &r.Status, &r.OldTask)
	return r, notFound(err)
}

// RegisterWorkspace stores the agent's URL and card (a nil card keeps the
// stored one) and brings the workspace online, counting the registration
// as a heartbeat. Paused and hibernated workspaces keep their status.
func (s *Store) RegisterWorkspace(ctx context.Context, id uuid.UUID, url string, card json.RawMessage) (StatusChange, error) {
	ch := StatusChange{ID: id}
	var c any
	if len(card) > 0 {
		c = []byte(card)
	}
	err := s.DB.QueryRowContext(ctx, `
		WITH old AS (
			SELECT id, status FROM workspaces WHERE id = $1 AND status <> 'removed' FOR UPDATE
		), nxt AS (
			SELECT id, status AS old_status,
				CASE WHEN status IN ('paused', 'hibernated') THEN status ELSE 'online' END AS new_status
			FROM old
		)
		UPDATE workspaces w SET url = $2, agent_card = COALESCE($3::jsonb, w.agent_card),
			status = nxt.new_status, last_heartbeat_at = now(), updated_at = now(),
			status_changed_at = CASE WHEN nxt.new_status <> nxt.old_status THEN now() ELSE w.status_changed_at END
		FROM nxt WHERE w.id = nxt.id
		RETURNING w.name, w.external, nxt.old_status, w.status`, id, url, c).
		Scan(&ch.Name, &ch.External, &ch.Old, &ch.New)
	return ch, notFound(err)
}

// UpdateAgentCard replaces a live workspace's agent card.
func (s *Store) UpdateAgentCard(ctx context.Context, id uuid.UUID, card json.RawMessage) error {
	res, err := s.DB.ExecContext(ctx, `UPDATE workspaces SET agent_card = $2, updated_at = now()
		WHERE id = $1 AND status <> 'removed'`, id, []byte(card))
	if err != nil {
		return wrap(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// Peer is a workspace next to another in the tree.
type Peer struct {
	ID           uuid.UUID       `json:"id"`
	Name         string          `json:"name"`
	Role         string          `json:"role"`
	Tier         int             `json:"tier"`
	Status       string          `json:"status"`
	AgentCard    json.RawMessage `json:"agent_card"`
	ActiveTasks  int             `json:"active_tasks"`
	Relationship string          `json:"relationship"` // parent, sibling or child
}

// Peers lists a workspace's parent, siblings (for a root: the other roots)
// and children, live only. q, when not empty, keeps those whose name or
// role contains it (case-insensitive).
func (s *Store) Peers(ctx context.Context, id uuid.UUID, q string) ([]Peer, error) {
	var pattern any
	if q != "" {
		r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
		pattern = "%" + r.Replace(q) + "%"
	}
	rows, err := s.DB.QueryContext(ctx, `
		WITH me AS (SELECT id, parent_id FROM workspaces WHERE id = $1 AND status <> 'removed')
		SELECT w.id, w.name, w.role, w.tier, w.status, w.agent_card, w.active_tasks,
			CASE WHEN w.id = me.parent_id THEN 'parent'
			     WHEN w.parent_id = me.id THEN 'child'
			     ELSE 'sibling' END
		FROM workspaces w, me
		WHERE w.status <> 'removed' AND w.id <> me.id
		  AND (w.id = me.parent_id OR w.parent_id = me.id OR w.parent_id IS NOT DISTINCT FROM me.parent_id)
		  AND ($2::text IS NULL OR w.name ILIKE $2 OR w.role ILIKE $2)
		ORDER BY 8, w.name, w.id`, id, pattern)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	out := []Peer{}
	for rows.Next() {
		var p Peer
		var card []byte
		if err := rows.Scan(&p.ID, &p.Name, &p.Role, &p.Tier, &p.Status, &card, &p.ActiveTasks, &p.Relationship); err != nil {
			return nil, wrap(err)
		}
		if len(card) > 0 {
			p.AgentCard = card
		}
		out = append(out, p)
	}
	return out, wrap(rows.Err())
}

// ClaimStale moves online and degraded workspaces that have not beaten for
// ttl to offline and returns them. A workspace that never beat counts from
// its last status change, except an external one registered by URL only
// (it has no agent that heartbeats). Rows are claimed with SKIP LOCKED in
// one UPDATE, so with several replicas each stale workspace is returned to
// exactly one of them.
func (s *Store) ClaimStale(ctx context.Context, ttl time.Duration) ([]StatusChange, error) {
	return s.claim(ctx, `
		UPDATE workspaces w SET status = 'offline', status_changed_at = now(), updated_at = now()
		FROM (
			SELECT id, status FROM workspaces
			WHERE status IN ('online', 'degraded')
			  AND ((last_heartbeat_at IS NOT NULL AND last_heartbeat_at < now() - make_interval(secs => $1))
			    OR (last_heartbeat_at IS NULL AND NOT external AND status_changed_at < now() - make_interval(secs => $1)))
			FOR UPDATE SKIP LOCKED
		) old
		WHERE w.id = old.id
		RETURNING w.id, w.name, w.external, old.status, w.status`, ttl.Seconds())
}

// ClaimProvisionTimeouts moves workspaces stuck in provisioning for longer
// than timeout to failed, each claimed by exactly one replica.
func (s *Store) ClaimProvisionTimeouts(ctx context.Context, timeout time.Duration) ([]StatusChange, error) {
	return s.claim(ctx, `
		UPDATE workspaces w SET status = 'failed', status_changed_at = now(), updated_at = now()
		FROM (
			SELECT id, status FROM workspaces
			WHERE status = 'provisioning' AND status_changed_at < now() - make_interval(secs => $1)
			FOR UPDATE SKIP LOCKED
		) old
		WHERE w.id = old.id
		RETURNING w.id, w.name, w.external, old.status, w.status`, timeout.Seconds())
}

func (s *Store) claim(ctx context.Context, query string, args ...any) ([]StatusChange, error) {
	rows, err := s.DB.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	var out []StatusChange
	for rows.Next() {
		var ch StatusChange
		if err := rows.Scan(&ch.ID, &ch.Name, &ch.External, &ch.Old, &ch.New); err != nil {
			return nil, wrap(err)
		}
		out = append(out, ch)
	}
	return out, wrap(rows.Err())
}
