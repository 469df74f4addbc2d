package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/moleculesai/molecule/internal/store"
)

// ConfigRebuilder regenerates a workspace's config volume from the org
// template whose role or name matches it (§2 restart with rebuild_config),
// for a workspace whose volume was lost. It is called before the workspace
// is re-provisioned, must be idempotent, and returns store.ErrNotFound when
// no template matches (the API answers 404). The provisioning area
// implements it and passes it as Deps.Rebuilder.
type ConfigRebuilder interface {
	RebuildConfig(ctx context.Context, ws *store.Workspace) error
}

// statusEvents names the event recorded for each status a workspace enters (§10).
var statusEvents = map[string]string{
	store.StatusProvisioning:  "WORKSPACE_PROVISIONING",
	store.StatusAwaitingAgent: "WORKSPACE_AWAITING_AGENT",
	store.StatusOnline:        "WORKSPACE_ONLINE",
	store.StatusDegraded:      "WORKSPACE_DEGRADED",
	store.StatusOffline:       "WORKSPACE_OFFLINE",
	store.StatusFailed:        "WORKSPACE_PROVISION_FAILED",
	store.StatusPaused:        "WORKSPACE_PAUSED",
	store.StatusHibernated:    "WORKSPACE_HIBERNATED",
	store.StatusRemoved:       "WORKSPACE_REMOVED",
}

// recordTransition stores and publishes the event of a status change. The
// event outlives the request: it is recorded even if the client hangs up.
func (s *Server) recordTransition(ctx context.Context, ch store.StatusChange, extra map[string]any) {
	typ, ok := statusEvents[ch.New]
	if !ok {
		return
	}
	payload := map[string]any{"status": ch.New, "name": ch.Name}
	if ch.Old != "" {
		payload["previous_status"] = ch.Old
	}
	for k, v := range extra {
		payload[k] = v
	}
	// Record logs its own failure; a missed event never fails the transition.
	_, _ = s.events.Record(context.WithoutCancel(ctx), typ, ch.ID, payload)
}

// needsBackend answers 503 when a provisioned workspace is asked to run on
// a server without a provisioner.
func (s *Server) needsBackend(c *gin.Context, ws *store.Workspace) bool {
	if !ws.External && s.lifecycle.Backend() == "none" {
		Fail(c, Unavailable("no provisioner is configured on this server, so this workspace cannot be started or stopped (set MOLECULE_PROVISIONER)"))
		return false
	}
	return true
}

// POST /workspaces/:id/restart {rebuild_config?}: stop and re-provision.
// A workspace may restart itself with its own token (to recover).
func (s *Server) restartWorkspace(c *gin.Context) {
	ws := loadedWorkspace(c)
	var req struct {
		RebuildConfig bool `json:"rebuild_config"`
	}
	if err := bindOptionalJSON(c, &req); err != nil {
		Fail(c, err)
		return
	}
	if ws.External {
		Fail(c, BadRequest("an external workspace runs outside the platform; restart its agent where it runs"))
		return
	}
	if !s.needsBackend(c, ws) {
		return
	}
	if req.RebuildConfig && s.rebuilder == nil {
		Fail(c, Unavailable("rebuilding a workspace's config is not available on this server"))
		return
	}
	ctx := c.Request.Context()
	bg := context.WithoutCancel(ctx)
	if err := s.lifecycle.Stop(bg, ws.ID); err != nil {
		// Provision replaces whatever is left; a stop failure only matters
		// to the operator.
		s.log.Warn("stop workspace before restart", "workspace_id", ws.ID, "err", err)
	}
	if req.RebuildConfig {
		if err := s.rebuilder.RebuildConfig(bg, ws); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				Fail(c, NotFound("no org template matches this workspace's role or name"))
				return
			}
			Fail(c, err)
			return
		}
	}
	ch, _, err := s.store.SetWorkspaceStatus(bg, ws.ID, store.StatusProvisioning)
	if err != nil {
		Fail(c, err)
		return
	}
	s.recordTransition(ctx, ch, map[string]any{"reason": "restart"})
	if err := s.provision(ctx, ws.ID); err != nil {
		Fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"status": store.StatusProvisioning})
}

// POST /workspaces/:id/pause: it and its descendants → paused, agents stopped.
func (s *Server) pauseWorkspace(c *gin.Context) {
	ws := loadedWorkspace(c)
	if !s.needsBackend(c, ws) {
		return
	}
	ctx := c.Request.Context()
	changed, err := s.store.PauseTree(ctx, ws.ID)
	if err != nil {
		Fail(c, err)
		return
	}
	bg := context.WithoutCancel(ctx)
	for _, ch := range changed {
		if !ch.External {
			if err := s.lifecycle.Stop(bg, ch.ID); err != nil {
				s.log.Error("stop paused workspace", "workspace_id", ch.ID, "err", err)
			}
		}
		s.recordTransition(bg, ch, nil)
	}
	c.JSON(http.StatusOK, gin.H{"status": store.StatusPaused, "paused": len(changed)})
}

// POST /workspaces/:id/resume: the paused subtree starts again.
func (s *Server) resumeWorkspace(c *gin.Context) {
	ws := loadedWorkspace(c)
	if ws.Status != store.StatusPaused {
		Fail(c, Conflict("workspace is not paused"))
		return
	}
	if !s.needsBackend(c, ws) {
		return
	}
	ctx := c.Request.Context()
	changed, err := s.store.ResumeTree(ctx, ws.ID)
	if err != nil {
		Fail(c, err)
		return
	}
	status := ws.Status
	for _, ch := range changed {
		s.recordTransition(ctx, ch, map[string]any{"reason": "resume"})
		if ch.ID == ws.ID {
			status = ch.New
		}
		if !ch.External {
			_ = s.provision(ctx, ch.ID) // a failure is recorded on that workspace
		}
	}
	c.JSON(http.StatusAccepted, gin.H{"status": status, "resumed": len(changed)})
}

// SweepOffline is the liveness loop (§5): workspaces without a heartbeat
// for MOLECULE_LIVENESS_TTL go offline, and provisioned ones are restarted.
// Rows are claimed atomically, so with several replicas each stale
// workspace is handled by exactly one.
func (s *Server) SweepOffline(ctx context.Context) error {
	stale, err := s.store.ClaimStale(ctx, s.cfg.LivenessTTL)
	if err != nil {
		return err
	}
	for _, ch := range stale {
		s.recordTransition(ctx, ch, map[string]any{"reason": "no heartbeat"})
		if ch.External || s.lifecycle.Backend() == "none" {
			continue
		}
		// Only the replica that claimed the row gets here; the status guard
		// keeps a beat that arrived in between from being overridden.
		re, changed, err := s.store.SetWorkspaceStatus(ctx, ch.ID, store.StatusProvisioning, store.StatusOffline)
		if err != nil {
			s.log.Error("restart offline workspace", "workspace_id", ch.ID, "err", err)
			continue
		}
		if changed {
			s.recordTransition(ctx, re, map[string]any{"reason": "restart after going offline"})
			_ = s.provision(ctx, ch.ID)
		}
	}
	return nil
}

// SweepProvisionTimeouts fails workspaces stuck in provisioning past
// MOLECULE_PROVISION_TIMEOUT, each claimed by exactly one replica.
func (s *Server) SweepProvisionTimeouts(ctx context.Context) error {
	stuck, err := s.store.ClaimProvisionTimeouts(ctx, s.cfg.ProvisionTimeout)
	if err != nil {
		return err
	}
	for _, ch := range stuck {
		s.recordTransition(ctx, ch, map[string]any{"error": "provisioning timed out"})
	}
	return nil
}
