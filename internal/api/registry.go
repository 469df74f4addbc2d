package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/a2a"
	"github.com/moleculesai/molecule/internal/auth"
	"github.com/moleculesai/molecule/internal/store"
)

// selfWorkspace checks that a registry body names the caller's own
// workspace: the token decides who the agent is, the body only repeats it.
func selfWorkspace(c *gin.Context, field, raw string) (uuid.UUID, error) {
	if raw == "" {
		return uuid.Nil, BadRequest(`field "` + field + `" is required`)
	}
	id, err := parseBodyUUID(field, raw)
	if err != nil {
		return uuid.Nil, err
	}
	if !principal(c).IsWorkspace(id) {
		return uuid.Nil, Forbidden("this token belongs to another workspace")
	}
	return id, nil
}

// checkCard accepts a JSON object (or absent/null → nil).
func checkCard(raw json.RawMessage, required bool) (json.RawMessage, error) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || bytes.Equal(t, []byte("null")) {
		if required {
			return nil, BadRequest(`field "agent_card" is required`)
		}
		return nil, nil
	}
	if t[0] != '{' {
		return nil, BadRequest(`field "agent_card" must be an object`)
	}
	// Postgres jsonb cannot hold \u0000; refuse it rather than fail later.
	if bytes.Contains(t, []byte(`\u0000`)) {
		return nil, BadRequest(`field "agent_card" must not contain NUL characters`)
	}
	return t, nil
}

// POST /registry/register {id, url, agent_card}: the agent says where it
// listens; the workspace goes online.
func (s *Server) registerAgent(c *gin.Context) {
	var req struct {
		ID        string          `json:"id"`
		URL       string          `json:"url"`
		AgentCard json.RawMessage `json:"agent_card"`
	}
	if err := bindJSON(c, &req); err != nil {
		Fail(c, err)
		return
	}
	id, err := selfWorkspace(c, "id", req.ID)
	if err != nil {
		Fail(c, err)
		return
	}
	if req.URL == "" {
		Fail(c, BadRequest(`field "url" is required`))
		return
	}
	if err := checkText("url", req.URL, maxURLLen); err != nil {
		Fail(c, err)
		return
	}
	if err := a2a.PolicyFor(s.cfg.AgentNetwork).CheckURL(req.URL); err != nil {
		Fail(c, BadRequest(`field "url" is refused: `+strings.TrimPrefix(err.Error(), a2a.ErrRefusedAddress.Error()+": ")))
		return
	}
	card, err := checkCard(req.AgentCard, false)
	if err != nil {
		Fail(c, err)
		return
	}
	ch, err := s.store.RegisterWorkspace(c.Request.Context(), id, req.URL, card)
	if errors.Is(err, store.ErrNotFound) {
		Fail(c, NotFound("workspace not found"))
		return
	}
	if err != nil {
		// §5: opaque, whatever the database said.
		Fail(c, &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "registration failed", Err: err})
		return
	}
	s.InvalidateA2A(id) // the proxy uses the new URL at once
	if ch.New == store.StatusOnline {
		s.recordTransition(c.Request.Context(), ch, map[string]any{"url": req.URL})
	}
	c.JSON(http.StatusOK, gin.H{"status": "registered", "workspace_status": ch.New})
}

// heartbeatRequest is an agent's beat (§5).
type heartbeatRequest struct {
	WorkspaceID     string          `json:"workspace_id"`
	ErrorRate       float64         `json:"error_rate"`
	SampleError     string          `json:"sample_error"`
	ActiveTasks     int             `json:"active_tasks"`
	CurrentTask     string          `json:"current_task"`
	UptimeSeconds   int64           `json:"uptime_seconds"`
	RuntimeState    string          `json:"runtime_state"`
	MonthlySpend    json.Number     `json:"monthly_spend"`
	RuntimeMetadata json.RawMessage `json:"runtime_metadata"`
}

// clampSpend reads a reported spend (cents) into [0, MaxMonthlySpend].
// Huge or fractional numbers are clamped or truncated, not refused: the
// agent's view of its spend must never block its heartbeat.
func clampSpend(n json.Number) (int64, error) {
	if n == "" {
		return 0, nil
	}
	if v, err := n.Int64(); err == nil {
		return min(max(v, 0), store.MaxMonthlySpend), nil
	}
	f, err := n.Float64()
	if err != nil && !errors.Is(err, strconv.ErrRange) { // ±Inf is a clampable reading
		return 0, BadRequest(`field "monthly_spend" must be a number`)
	}
	switch {
	case math.IsNaN(f) || f <= 0:
		return 0, nil
	case f >= float64(store.MaxMonthlySpend):
		return store.MaxMonthlySpend, nil
	}
	return int64(f), nil
}

// POST /registry/heartbeat: the hottest write. One statement updates the
// row and returns old and new status; events go out after.
func (s *Server) heartbeat(c *gin.Context) {
	var req heartbeatRequest
	if err := bindJSON(c, &req); err != nil {
		Fail(c, err)
		return
	}
	id, err := selfWorkspace(c, "workspace_id", req.WorkspaceID)
	if err != nil {
		Fail(c, err)
		return
	}
	if req.ErrorRate < 0 || req.ErrorRate > 1 {
		Fail(c, BadRequest(`field "error_rate" must be between 0 and 1`))
		return
	}
	if req.ActiveTasks < 0 || req.UptimeSeconds < 0 {
		Fail(c, BadRequest(`fields "active_tasks" and "uptime_seconds" must not be negative`))
		return
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"sample_error", req.SampleError, 4096}, {"current_task", req.CurrentTask, 1024}, {"runtime_state", req.RuntimeState, 64}} {
		if err := checkText(f.name, f.v, f.max); err != nil {
			Fail(c, err)
			return
		}
	}
	spend, err := clampSpend(req.MonthlySpend)
	if err != nil {
		Fail(c, err)
		return
	}
	ctx := c.Request.Context()
	res, err := s.store.Heartbeat(ctx, store.Beat{
		WorkspaceID: id, ErrorRate: req.ErrorRate, SampleError: req.SampleError, ActiveTasks: req.ActiveTasks,
		CurrentTask: req.CurrentTask, UptimeSeconds: req.UptimeSeconds, MonthlySpend: spend,
		Degraded: req.ErrorRate >= 0.5 || req.RuntimeState == "wedged",
	})
	if errors.Is(err, store.ErrNotFound) {
		Fail(c, NotFound("workspace not found"))
		return
	}
	if err != nil {
		Fail(c, err)
		return
	}
	if spend > 0 {
		s.a2a.budgets.Invalidate(id) // a new reported spend applies to the next call
	}
	s.events.Broadcast(ctx, "WORKSPACE_HEARTBEAT", id, map[string]any{
		"status": res.Status, "active_tasks": req.ActiveTasks, "current_task": req.CurrentTask,
		"error_rate": req.ErrorRate, "uptime_seconds": req.UptimeSeconds,
	})
	if req.CurrentTask != res.OldTask {
		s.events.Broadcast(ctx, "TASK_UPDATED", id, map[string]any{
			"current_task": req.CurrentTask, "previous_task": res.OldTask, "active_tasks": req.ActiveTasks,
		})
	}
	if res.Status != res.OldStatus {
		extra := map[string]any{"error_rate": req.ErrorRate}
		if res.Status == store.StatusDegraded {
			extra["sample_error"] = req.SampleError
			extra["runtime_state"] = req.RuntimeState
		}
		s.recordTransition(ctx, store.StatusChange{ID: id, Old: res.OldStatus, New: res.Status}, extra)
	}
	c.JSON(http.StatusOK, gin.H{"status": res.Status})
}

// POST /registry/update-card {workspace_id, agent_card}
func (s *Server) updateAgentCard(c *gin.Context) {
	var req struct {
		WorkspaceID string          `json:"workspace_id"`
		AgentCard   json.RawMessage `json:"agent_card"`
	}
	if err := bindJSON(c, &req); err != nil {
		Fail(c, err)
		return
	}
	id, err := selfWorkspace(c, "workspace_id", req.WorkspaceID)
	if err != nil {
		Fail(c, err)
		return
	}
	card, err := checkCard(req.AgentCard, true)
	if err != nil {
		Fail(c, err)
		return
	}
	ctx := c.Request.Context()
	if err := s.store.UpdateAgentCard(ctx, id, card); err != nil {
		Fail(c, err)
		return
	}
	_, _ = s.events.Record(context.WithoutCancel(ctx), "AGENT_CARD_UPDATED", id, map[string]any{"agent_card": card})
	c.JSON(http.StatusOK, gin.H{"status": "updated"})
}

// canCommunicate applies a2a.CanCommunicate to two workspaces.
func (s *Server) canCommunicate(ctx context.Context, caller, target uuid.UUID) (bool, error) {
	chains, err := s.store.AncestorChains(ctx, caller, target)
	if err != nil {
		return false, err
	}
	return a2a.CanCommunicate(chains[caller], chains[target]), nil
}

// GET /registry/discover/:id: where a workspace the caller may talk to lives.
func (s *Server) discover(c *gin.Context) {
	target, err := pathUUID(c, "id")
	if err != nil {
		Fail(c, err)
		return
	}
	ctx := c.Request.Context()
	ws, err := s.store.GetWorkspace(ctx, target)
	if errors.Is(err, store.ErrNotFound) {
		Fail(c, NotFound("workspace not found"))
		return
	}
	if err != nil {
		Fail(c, err)
		return
	}
	ok, err := s.canCommunicate(ctx, principal(c).WorkspaceID, target)
	if err != nil {
		Fail(c, err)
		return
	}
	if !ok {
		Fail(c, Forbidden("access denied"))
		return
	}
	c.JSON(http.StatusOK, gin.H{"id": ws.ID, "name": ws.Name, "url": ws.URL, "status": ws.Status, "agent_card": ws.AgentCard})
}

// GET /registry/:id/peers?q=: parent, siblings and children that :id may
// talk to.
func (s *Server) peers(c *gin.Context) {
	ws := loadedWorkspace(c)
	q := c.Query("q")
	if err := checkText("q", q, 256); err != nil {
		Fail(c, err)
		return
	}
	ctx := c.Request.Context()
	list, err := s.store.Peers(ctx, ws.ID, q)
	if err != nil {
		Fail(c, err)
		return
	}
	ids := make([]uuid.UUID, 0, len(list)+1)
	ids = append(ids, ws.ID)
	for _, p := range list {
		ids = append(ids, p.ID)
	}
	chains, err := s.store.AncestorChains(ctx, ids...)
	if err != nil {
		Fail(c, err)
		return
	}
	out := make([]store.Peer, 0, len(list))
	for _, p := range list {
		if a2a.CanCommunicate(chains[ws.ID], chains[p.ID]) {
			out = append(out, p)
		}
	}
	c.JSON(http.StatusOK, out)
}

// POST /registry/check-access {caller_id, target_id} → {allowed}. Admin
// principals ask about anyone; a workspace token only about itself as caller.
func (s *Server) checkAccess(c *gin.Context) {
	var req struct {
		CallerID string `json:"caller_id"`
		TargetID string `json:"target_id"`
	}
	if err := bindJSON(c, &req); err != nil {
		Fail(c, err)
		return
	}
	caller, err := parseBodyUUID("caller_id", req.CallerID)
	if err != nil {
		Fail(c, err)
		return
	}
	target, err := parseBodyUUID("target_id", req.TargetID)
	if err != nil {
		Fail(c, err)
		return
	}
	p := principal(c)
	if p.Kind == auth.Workspace && p.WorkspaceID != caller {
		Fail(c, Forbidden("a workspace token may only check access for its own workspace"))
		return
	}
	ok, err := s.canCommunicate(c.Request.Context(), caller, target)
	if err != nil {
		Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"allowed": ok})
}
