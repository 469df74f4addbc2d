package store

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"
)

// A2ARoute is what the A2A proxy needs to know about one workspace: where
// its agent listens and where it sits in the tree. The proxy caches it.
type A2ARoute struct {
	ID       uuid.UUID
	Status   string
	URL      string
	External bool
	// Chain is [self, parent, …, root], the input of a2a.CanCommunicate.
	Chain []uuid.UUID
}

// A2ARoute loads the route of a non-removed workspace in one query;
// unknown or removed → ErrNotFound.
func (s *Store) A2ARoute(ctx context.Context, id uuid.UUID) (A2ARoute, error) {
	r := A2ARoute{ID: id}
	var chain []string
	err := s.DB.QueryRowContext(ctx, `
		WITH RECURSIVE up AS (
			SELECT w.id, w.parent_id, 0 AS depth
			FROM workspaces w WHERE w.id = $1 AND w.status <> 'removed'
			UNION ALL
			SELECT p.id, p.parent_id, up.depth + 1
			FROM up JOIN workspaces p ON p.id = up.parent_id
			WHERE up.depth < 64
		)
		SELECT w.status, w.url, w.external, ARRAY(SELECT up.id::text FROM up ORDER BY up.depth)
		FROM workspaces w WHERE w.id = $1 AND w.status <> 'removed'`, id).
		Scan(&r.Status, &r.URL, &r.External, pq.Array(&chain))
	if err != nil {
		return A2ARoute{}, notFound(err)
	}
	r.Chain = make([]uuid.UUID, 0, len(chain))
	for _, c := range chain {
		u, err := uuid.Parse(c)
		if err != nil {
			return A2ARoute{}, err
		}
		r.Chain = append(r.Chain, u)
	}
	return r, nil
}

// MarkWorkspaceOfflineIfLive moves an online or degraded workspace to
// offline (its agent was found dead) and reports whether this call made the
// change, so that of several concurrent callers (or replicas) exactly one
// restarts it. Paused, hibernated and other states are left alone.
func (s *Store) MarkWorkspaceOfflineIfLive(ctx context.Context, id uuid.UUID) (bool, error) {
	res, err := s.DB.ExecContext(ctx, `
		UPDATE workspaces SET status = 'offline', status_changed_at = now(), updated_at = now()
		WHERE id = $1 AND status IN ('online', 'degraded')`, id)
	if err != nil {
		return false, wrap(err)
	}
	n, err := res.RowsAffected()
	return n == 1, wrap(err)
}

// BudgetState is a workspace's budget and this month's spend, in cents.
type BudgetState struct {
	Limit *int64
	// ReportedSpend is what the agent reported (monthly_spend).
	ReportedSpend int64
	// MeteredCents is the platform-metered cost since monthStart, rounded
	// down to whole cents.
	MeteredCents int64
}

// Spend is the spend the budget is checked against: the greater of the
// reported and the metered spend (§6).
func (b BudgetState) Spend() int64 { return max(b.ReportedSpend, b.MeteredCents) }

// Exceeded reports whether a limit is set and the spend has reached it.
func (b BudgetState) Exceeded() bool { return b.Limit != nil && b.Spend() >= *b.Limit }

// BudgetState reads a non-removed workspace's budget and its spend since
// monthStart (a UTC date) in one query; unknown → ErrNotFound.
func (s *Store) BudgetState(ctx context.Context, id uuid.UUID, monthStart time.Time) (BudgetState, error) {
	var b BudgetState
	var limit *int64
	err := s.DB.QueryRowContext(ctx, `
		SELECT w.budget_limit, w.monthly_spend,
			COALESCE((SELECT floor(sum(u.estimated_cost_usd) * 100)::bigint
				FROM workspace_token_usage u
				WHERE u.workspace_id = w.id AND u.day >= $2::date), 0)
		FROM workspaces w WHERE w.id = $1 AND w.status <> 'removed'`,
		id, monthStart.UTC().Format(time.DateOnly)).Scan(&limit, &b.ReportedSpend, &b.MeteredCents)
	if err != nil {
		return BudgetState{}, notFound(err)
	}
	b.Limit = limit
	return b, nil
}

// SetBudgetLimit sets (or, with nil, clears) a workspace's budget limit in
// cents; unknown or removed → ErrNotFound.
func (s *Store) SetBudgetLimit(ctx context.Context, id uuid.UUID, limit *int64) error {
	res, err := s.DB.ExecContext(ctx, `UPDATE workspaces SET budget_limit = $2, updated_at = now()
		WHERE id = $1 AND status <> 'removed'`, id, limit)
	if err != nil {
		return wrap(err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return wrap(err)
	} else if n == 0 {
		return ErrNotFound
	}
	return nil
}
