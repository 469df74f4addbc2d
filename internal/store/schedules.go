package store

import (
	"context"
	"database/sql"
	"time"

	"github.com/google/uuid"
)

// Schedule sources: template-owned rows are rewritten by a re-import of
// their org template; runtime rows (created through the API) never are.
const (
	ScheduleSourceTemplate = "template"
	ScheduleSourceRuntime  = "runtime"
)

// Schedule is a row of workspace_schedules (§16).
type Schedule struct {
	ID          uuid.UUID  `json:"id"`
	WorkspaceID uuid.UUID  `json:"workspace_id"`
	Name        string     `json:"name"`
	CronExpr    string     `json:"cron_expr"`
	Timezone    string     `json:"timezone"`
	Prompt      string     `json:"prompt"`
	Enabled     bool       `json:"enabled"`
	Source      string     `json:"source"`
	LastRunAt   *time.Time `json:"last_run_at"`
	LastStatus  string     `json:"last_status"`
	LastError   string     `json:"last_error"`
	RunCount    int64      `json:"run_count"`
	NextRunAt   *time.Time `json:"next_run_at"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
}

const scheduleColumns = `id, workspace_id, name, cron_expr, timezone, prompt, enabled, source,
	last_run_at, last_status, last_error, run_count, next_run_at, created_at, updated_at`

func scanSchedule(row scanner) (*Schedule, error) {
	var sc Schedule
	err := row.Scan(&sc.ID, &sc.WorkspaceID, &sc.Name, &sc.CronExpr, &sc.Timezone, &sc.Prompt, &sc.Enabled,
		&sc.Source, &sc.LastRunAt, &sc.LastStatus, &sc.LastError, &sc.RunCount, &sc.NextRunAt,
		&sc.CreatedAt, &sc.UpdatedAt)
	if err != nil {
		return nil, err
	}
	return &sc, nil
}

// ListSchedules returns a workspace's schedules, oldest first.
func (s *Store) ListSchedules(ctx context.Context, wsID uuid.UUID) ([]*Schedule, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT `+scheduleColumns+` FROM workspace_schedules
		WHERE workspace_id = $1 ORDER BY created_at, name`, wsID)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	out := []*Schedule{}
	for rows.Next() {
		sc, err := scanSchedule(rows)
		if err != nil {
			return nil, wrap(err)
		}
		out = append(out, sc)
	}
	return out, wrap(rows.Err())
}

// InsertScheduleTx writes a new schedule. ID, WorkspaceID, Name, CronExpr,
// Timezone, Prompt and Source must be set.
func InsertScheduleTx(ctx context.Context, tx *sql.Tx, sc *Schedule) error {
	return wrap(tx.QueryRowContext(ctx, `INSERT INTO workspace_schedules
		(id, workspace_id, name, cron_expr, timezone, prompt, enabled, source, next_run_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) RETURNING created_at, updated_at`,
		sc.ID, sc.WorkspaceID, sc.Name, sc.CronExpr, sc.Timezone, sc.Prompt, sc.Enabled, sc.Source, sc.NextRunAt,
	).Scan(&sc.CreatedAt, &sc.UpdatedAt))
}

// SyncTemplateSchedulesTx makes the template-owned schedules of a
// workspace exactly scheds (matched by name): new ones are inserted,
// existing ones get the template's cron, timezone, prompt and enabled flag
// (their run history is kept, next_run_at is replaced only when the timing
// changed), and template-owned schedules the template no longer names are
// deleted. Runtime schedules are never touched.
func SyncTemplateSchedulesTx(ctx context.Context, tx *sql.Tx, wsID uuid.UUID, scheds []Schedule) error {
	names := make([]string, 0, len(scheds))
	for i := range scheds {
		sc := &scheds[i]
		names = append(names, sc.Name)
		_, err := tx.ExecContext(ctx, `
			INSERT INTO workspace_schedules
				(id, workspace_id, name, cron_expr, timezone, prompt, enabled, source, next_run_at)
			VALUES ($1,$2,$3,$4,$5,$6,$7,'template',$8)
			ON CONFLICT (workspace_id, name) WHERE source = 'template' DO UPDATE SET
				next_run_at = CASE
					WHEN workspace_schedules.cron_expr <> EXCLUDED.cron_expr
					  OR workspace_schedules.timezone <> EXCLUDED.timezone
					  OR workspace_schedules.next_run_at IS NULL
					THEN EXCLUDED.next_run_at ELSE workspace_schedules.next_run_at END,
				cron_expr = EXCLUDED.cron_expr,
				timezone = EXCLUDED.timezone,
				prompt = EXCLUDED.prompt,
				enabled = EXCLUDED.enabled,
				updated_at = now()`,
			uuid.New(), wsID, sc.Name, sc.CronExpr, sc.Timezone, sc.Prompt, sc.Enabled, sc.NextRunAt)
		if err != nil {
			return wrap(err)
		}
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM workspace_schedules
		WHERE workspace_id = $1 AND source = 'template' AND NOT (name = ANY($2::text[]))`, wsID, pqArray(names))
	return wrap(err)
}

// DisableSchedulesTx disables every schedule of the given workspaces (and
// clears next_run_at so the scheduler never picks them up). DELETE
// /workspaces/:id calls it in the transaction that marks them removed (§2).
func DisableSchedulesTx(ctx context.Context, tx *sql.Tx, wsIDs []uuid.UUID) error {
	if len(wsIDs) == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, `UPDATE workspace_schedules SET enabled = false, next_run_at = NULL, updated_at = now()
		WHERE workspace_id = ANY($1::uuid[]) AND (enabled OR next_run_at IS NOT NULL)`, uuidArray(wsIDs))
	return wrap(err)
}
