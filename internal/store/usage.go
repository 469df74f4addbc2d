package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"
)

// UsageDelta is metered usage to add to one workspace's row of one UTC day.
type UsageDelta struct {
	WorkspaceID  uuid.UUID
	Day          time.Time // any time within the UTC day
	InputTokens  int64
	OutputTokens int64
	Calls        int64
	CostMicroUSD int64 // millionths of a dollar
}

// AddUsage adds every delta with one upsert. Deltas of the same workspace
// and day must already be merged (the metering batcher does it); deltas of
// workspaces that no longer exist are skipped rather than failing the batch.
func (s *Store) AddUsage(ctx context.Context, deltas []UsageDelta) error {
	if len(deltas) == 0 {
		return nil
	}
	ids := make([]string, len(deltas))
	days := make([]string, len(deltas))
	in := make([]int64, len(deltas))
	out := make([]int64, len(deltas))
	calls := make([]int64, len(deltas))
	cost := make([]string, len(deltas))
	for i, d := range deltas {
		ids[i] = d.WorkspaceID.String()
		days[i] = d.Day.UTC().Format(time.DateOnly)
		in[i], out[i], calls[i] = d.InputTokens, d.OutputTokens, d.Calls
		cost[i] = microToDecimal(d.CostMicroUSD)
	}
	_, err := s.DB.ExecContext(ctx, `
		INSERT INTO workspace_token_usage AS t
			(workspace_id, day, input_tokens, output_tokens, call_count, estimated_cost_usd)
		SELECT u.ws, u.day, u.inp, u.outp, u.calls, u.cost
		FROM unnest($1::uuid[], $2::date[], $3::bigint[], $4::bigint[], $5::bigint[], $6::numeric[])
			AS u(ws, day, inp, outp, calls, cost)
		JOIN workspaces w ON w.id = u.ws
		ON CONFLICT (workspace_id, day) DO UPDATE SET
			input_tokens = t.input_tokens + EXCLUDED.input_tokens,
			output_tokens = t.output_tokens + EXCLUDED.output_tokens,
			call_count = t.call_count + EXCLUDED.call_count,
			estimated_cost_usd = t.estimated_cost_usd + EXCLUDED.estimated_cost_usd,
			updated_at = now()`,
		pq.Array(ids), pq.Array(days), pq.Array(in), pq.Array(out), pq.Array(calls), pq.Array(cost))
	return wrap(err)
}

func microToDecimal(m int64) string {
	if m < 0 {
		m = 0
	}
	return fmt.Sprintf("%d.%06d", m/1_000_000, m%1_000_000)
}

// UsageTotals is metered usage summed over a period.
type UsageTotals struct {
	InputTokens  int64
	OutputTokens int64
	Calls        int64
	CostUSD      string // six decimals, e.g. "0.000000"
}

// UsageBetween sums a workspace's usage over the UTC days [from, to).
func (s *Store) UsageBetween(ctx context.Context, id uuid.UUID, from, to time.Time) (UsageTotals, error) {
	var u UsageTotals
	err := s.DB.QueryRowContext(ctx, `
		SELECT COALESCE(sum(input_tokens), 0)::bigint, COALESCE(sum(output_tokens), 0)::bigint,
			COALESCE(sum(call_count), 0)::bigint,
			COALESCE(sum(estimated_cost_usd), 0)::numeric(20, 6)::text
		FROM workspace_token_usage
		WHERE workspace_id = $1 AND day >= $2::date AND day < $3::date`,
		id, from.UTC().Format(time.DateOnly), to.UTC().Format(time.DateOnly)).
		Scan(&u.InputTokens, &u.OutputTokens, &u.Calls, &u.CostUSD)
	return u, wrap(err)
}
