package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
)

// maxBudgetLimit matches the clamp on reported spend (§5): ten billion
// dollars in cents. It also keeps budget arithmetic far from overflow.
const maxBudgetLimit = 1_000_000_000_000

// budgetView is §8's budget answer, in cents.
type budgetView struct {
	BudgetLimit     *int64 `json:"budget_limit"`
	MonthlySpend    int64  `json:"monthly_spend"`
	BudgetRemaining *int64 `json:"budget_remaining"`
}

func (s *Server) readBudget(c *gin.Context, id uuid.UUID) (budgetView, error) {
	b, err := s.store.BudgetState(c.Request.Context(), id, monthStart(s.now()))
	if err != nil {
		return budgetView{}, err
	}
	v := budgetView{BudgetLimit: b.Limit, MonthlySpend: b.Spend()}
	if b.Limit != nil {
		r := *b.Limit - v.MonthlySpend
		v.BudgetRemaining = &r
	}
	return v, nil
}

// GET /workspaces/:id/budget: limit, this month's spend (the greater of
// reported and metered) and what remains.
func (s *Server) getBudget(c *gin.Context) {
	v, err := s.readBudget(c, loadedWorkspace(c).ID)
	if err != nil {
		Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

// PATCH /workspaces/:id/budget (admin): set or clear the limit, then echo
// the stored state. The proxy's cached budget of this workspace is dropped
// so the new limit applies to the next call.
func (s *Server) patchBudget(c *gin.Context) {
	id := loadedWorkspace(c).ID
	var body map[string]json.RawMessage
	if err := bindJSON(c, &body); err != nil {
		Fail(c, err)
		return
	}
	raw, ok := body["budget_limit"]
	if !ok {
		Fail(c, BadRequest(`field "budget_limit" is required (an integer number of cents, or null to clear)`))
		return
	}
	var limit *int64
	if string(raw) != "null" {
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			Fail(c, BadRequest(`field "budget_limit" must be an integer number of cents or null`))
			return
		}
		if n < 0 {
			Fail(c, BadRequest(`field "budget_limit" must not be negative`))
			return
		}
		if n > maxBudgetLimit {
			Fail(c, BadRequest(`field "budget_limit" must be at most 1000000000000`))
			return
		}
		limit = &n
	}
	if err := s.store.SetBudgetLimit(c.Request.Context(), id, limit); err != nil {
		Fail(c, err)
		return
	}
	s.InvalidateA2A(id)
	v, err := s.readBudget(c, id)
	if err != nil {
		Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

// GET /workspaces/:id/metrics?period=day|month: metered token usage of the
// current UTC day (default) or month to date.
func (s *Server) getMetrics(c *gin.Context) {
	id := loadedWorkspace(c).ID
	now := s.now()
	var from, to time.Time
	switch c.Query("period") {
	case "", "day":
		from = dayStart(now)
		to = from.AddDate(0, 0, 1)
	case "month":
		from = monthStart(now)
		to = from.AddDate(0, 1, 0)
	default:
		Fail(c, BadRequest("period must be day or month"))
		return
	}
	u, err := s.store.UsageBetween(c.Request.Context(), id, from, to)
	if err != nil {
		Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{
		"input_tokens": u.InputTokens, "output_tokens": u.OutputTokens, "total_calls": u.Calls,
		"estimated_cost_usd": u.CostUSD, "period_start": from, "period_end": to,
	})
}
