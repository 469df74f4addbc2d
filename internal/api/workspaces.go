package api

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/a2a"
	"github.com/moleculesai/molecule/internal/auth"
	"github.com/moleculesai/molecule/internal/secrets"
	"github.com/moleculesai/molecule/internal/store"
)

// workspaceView is a workspace as answered. Billing fields never appear
// (store.Workspace tags them out); the admin-only fields shadow the
// embedded ones and are set only for admin principals (§2).
type workspaceView struct {
	*store.Workspace
	LastSampleError *string         `json:"last_sample_error,omitempty"`
	InstanceID      *string         `json:"instance_id,omitempty"`
	NeedsRestart    *bool           `json:"needs_restart,omitempty"`
	Connection      *connectionInfo `json:"connection,omitempty"`
}

// connectionInfo is what an external agent needs to join; shown once.
type connectionInfo struct {
	AuthToken   string    `json:"auth_token"`
	PlatformURL string    `json:"platform_url"`
	WorkspaceID uuid.UUID `json:"workspace_id"`
}

func viewFor(p auth.Principal, w *store.Workspace) workspaceView {
	v := workspaceView{Workspace: w}
	if p.IsAdmin() {
		v.LastSampleError, v.InstanceID = &w.LastSampleError, &w.InstanceID
	}
	return v
}

// Field limits for workspace text.
const (
	maxNameLen    = 128
	maxRoleLen    = 256
	maxPathLen    = 4096
	maxURLLen     = 2048
	maxSecretSize = 64 << 10
)

var runtimeRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

var accessModes = map[string]bool{"none": true, "read_only": true, "read_write": true}

type createWorkspaceRequest struct {
	Name            string            `json:"name"`
	Role            string            `json:"role"`
	Tier            *int              `json:"tier"`
	Runtime         string            `json:"runtime"`
	ParentID        *string           `json:"parent_id"`
	Template        string            `json:"template"`
	WorkspaceDir    string            `json:"workspace_dir"`
	WorkspaceAccess string            `json:"workspace_access"`
	BudgetLimit     *int64            `json:"budget_limit"`
	Secrets         map[string]string `json:"secrets"`
	External        bool              `json:"external"`
	URL             string            `json:"url"`
	Canvas          *struct {
		X float64 `json:"x"`
		Y float64 `json:"y"`
	} `json:"canvas"`
}

// validate checks everything a create can be refused for, before any write.
func (s *Server) validateCreate(req *createWorkspaceRequest) (*store.Workspace, error) {
	w := &store.Workspace{ID: uuid.New(), Name: strings.TrimSpace(req.Name), Role: req.Role,
		Runtime: req.Runtime, Template: req.Template, WorkspaceDir: req.WorkspaceDir,
		WorkspaceAccess: req.WorkspaceAccess, External: req.External, URL: req.URL, BudgetLimit: req.BudgetLimit}
	if w.Name == "" {
		return nil, BadRequest(`field "name" is required`)
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"name", w.Name, maxNameLen}, {"role", w.Role, maxRoleLen}, {"runtime", w.Runtime, 64},
		{"template", w.Template, 256}, {"workspace_dir", w.WorkspaceDir, maxPathLen}, {"url", w.URL, maxURLLen},
		{"workspace_access", w.WorkspaceAccess, 32}} {
		if err := checkText(f.name, f.v, f.max); err != nil {
			return nil, err
		}
	}
	if req.Tier != nil {
		if *req.Tier < 1 || *req.Tier > 4 {
			return nil, BadRequest(`field "tier" must be between 1 and 4`)
		}
		w.Tier = *req.Tier
	}
	if err := checkRuntime(w.Runtime); err != nil {
		return nil, err
	}
	if err := checkWorkspaceDir(w.WorkspaceDir); err != nil {
		return nil, err
	}
	if w.WorkspaceAccess != "" && !accessModes[w.WorkspaceAccess] {
		return nil, BadRequest(`field "workspace_access" must be none, read_only or read_write`)
	}
	if req.BudgetLimit != nil && *req.BudgetLimit < 0 {
		return nil, BadRequest(`field "budget_limit" must be zero or more (cents)`)
	}
	if req.ParentID != nil && *req.ParentID != "" {
		id, err := parseBodyUUID("parent_id", *req.ParentID)
		if err != nil {
			return nil, err
		}
		w.ParentID = &id
	}
	if w.URL != "" {
		if !w.External {
			return nil, BadRequest(`field "url" is only for external workspaces; a provisioned agent registers its own`)
		}
		if err := a2a.PolicyFor(s.cfg.AgentNetwork).CheckURL(w.URL); err != nil {
			return nil, BadRequest(`field "url" is refused: ` + strings.TrimPrefix(err.Error(), a2a.ErrRefusedAddress.Error()+": "))
		}
	}
	for k, v := range req.Secrets {
		if err := secrets.ValidateName(k); err != nil {
			return nil, BadRequest("secrets: " + err.Error())
		}
		if len(v) > maxSecretSize {
			return nil, BadRequest("secrets: a value may be at most 65536 bytes")
		}
	}
	if req.Canvas != nil {
		w.X, w.Y = req.Canvas.X, req.Canvas.Y
	}
	return w, nil
}

func checkRuntime(r string) error {
	if r != "" && !runtimeRe.MatchString(r) {
		return BadRequest(`field "runtime" must be a runtime name (lowercase letters, digits, ".", "_", "-")`)
	}
	return nil
}

func checkWorkspaceDir(d string) error {
	if d != "" && (!strings.HasPrefix(d, "/") || path.Clean(d) != d) {
		return BadRequest(`field "workspace_dir" must be a clean absolute path`)
	}
	return nil
}

// POST /workspaces: create a workspace, its sealed secrets and (external
// without url) its connection token in one transaction, then provision.
func (s *Server) createWorkspace(c *gin.Context) {
	var req createWorkspaceRequest
	if err := bindJSON(c, &req); err != nil {
		Fail(c, err)
		return
	}
	w, err := s.validateCreate(&req)
	if err != nil {
		Fail(c, err)
		return
	}
	if !w.External && s.lifecycle.Backend() == "none" {
		Fail(c, Unavailable("no provisioner is configured on this server, so only external workspaces can be created (set MOLECULE_PROVISIONER, or create it with \"external\": true)"))
		return
	}
	switch {
	case !w.External:
		w.Status = store.StatusProvisioning
	case w.URL == "":
		w.Status = store.StatusAwaitingAgent
	default:
		w.Status = store.StatusOnline
	}
	// Seal before the transaction: no work holds row locks but SQL.
	type sealedSecret struct {
		key    string
		sealed []byte
	}
	sealed := make([]sealedSecret, 0, len(req.Secrets))
	for k, v := range req.Secrets {
		b, err := s.keyring.Seal([]byte(v), w.ID.String(), k)
		if err != nil {
			Fail(c, err)
			return
		}
		sealed = append(sealed, sealedSecret{k, b})
	}
	var conn *connectionInfo
	ctx := c.Request.Context()
	err = s.store.Tx(ctx, func(tx *sql.Tx) error {
		if w.ParentID != nil {
			if err := store.LockTreeSharedTx(ctx, tx); err != nil {
				return err
			}
		}
		if err := store.InsertWorkspaceTx(ctx, tx, w); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return NotFound("parent workspace not found")
			}
			return err
		}
		for _, sec := range sealed {
			if err := store.PutWorkspaceSecretTx(ctx, tx, w.ID, sec.key, sec.sealed, s.keyring.ActiveID()); err != nil {
				return err
			}
		}
		if w.Status == store.StatusAwaitingAgent {
			plain, hash, prefix := auth.NewToken()
			if err := store.InsertWorkspaceTokenTx(ctx, tx, store.NewTokenRow{ID: uuid.New(), WorkspaceID: w.ID,
				Name: "connection", Hash: hash, Prefix: prefix}); err != nil {
				return err
			}
			conn = &connectionInfo{AuthToken: plain, PlatformURL: s.platformURL(c), WorkspaceID: w.ID}
		}
		return nil
	})
	if err != nil {
		Fail(c, err)
		return
	}
	s.recordTransition(ctx, store.StatusChange{ID: w.ID, Name: w.Name, External: w.External, New: w.Status}, nil)
	if w.Status == store.StatusProvisioning {
		_ = s.provision(ctx, w.ID) // a failure is recorded on the workspace (failed + event)
		if cur, err := s.store.GetWorkspace(ctx, w.ID); err == nil {
			w = cur
		}
	}
	v := viewFor(principal(c), w)
	v.Connection = conn
	c.JSON(http.StatusCreated, v)
}

// provision asks the backend to (re)start an agent; if it cannot even
// queue the work the workspace goes failed with an event. It returns the
// error for callers that answer with it.
func (s *Server) provision(ctx context.Context, id uuid.UUID) error {
	err := s.lifecycle.Provision(context.WithoutCancel(ctx), id)
	if err == nil {
		return nil
	}
	logger := s.log.With("workspace_id", id)
	logger.Error("provision workspace", "err", err)
	ch, changed, serr := s.store.SetWorkspaceStatus(context.WithoutCancel(ctx), id, store.StatusFailed, store.StatusProvisioning)
	if serr != nil {
		logger.Error("mark workspace failed", "err", serr)
	} else if changed {
		s.recordTransition(ctx, ch, map[string]any{"error": "the provisioner could not start the workspace"})
	}
	return err
}

// platformURL is the URL agents call back on: the configured public URL,
// else the address this request reached.
func (s *Server) platformURL(c *gin.Context) string {
	if s.cfg.PublicURL != "" {
		return strings.TrimRight(s.cfg.PublicURL, "/")
	}
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.Request.Host
}

// GET /workspaces: every live workspace (the canvas tree).
func (s *Server) listWorkspaces(c *gin.Context) {
	list, err := s.store.ListWorkspaces(c.Request.Context())
	if err != nil {
		Fail(c, err)
		return
	}
	p := principal(c)
	out := make([]workspaceView, len(list))
	for i, w := range list {
		out[i] = viewFor(p, w)
	}
	c.JSON(http.StatusOK, out)
}

// GET /workspaces/:id
func (s *Server) getWorkspace(c *gin.Context) {
	c.JSON(http.StatusOK, viewFor(principal(c), loadedWorkspace(c)))
}

type patchWorkspaceRequest struct {
	Name               *string         `json:"name"`
	Role               *string         `json:"role"`
	X                  *float64        `json:"x"`
	Y                  *float64        `json:"y"`
	Collapsed          *bool           `json:"collapsed"`
	ParentID           json.RawMessage `json:"parent_id"`
	Tier               *int            `json:"tier"`
	Runtime            *string         `json:"runtime"`
	WorkspaceDir       *string         `json:"workspace_dir"`
	WorkspaceAccess    *string         `json:"workspace_access"`
	MaxConcurrentTasks *int            `json:"max_concurrent_tasks"`
	BudgetLimit        json.RawMessage `json:"budget_limit"`
	MonthlySpend       json.RawMessage `json:"monthly_spend"`
}

func (r *patchWorkspaceRequest) sensitive() bool {
	return r.ParentID != nil || r.Tier != nil || r.Runtime != nil || r.WorkspaceDir != nil ||
		r.WorkspaceAccess != nil || r.MaxConcurrentTasks != nil
}

// PATCH /workspaces/:id: canvas fields for any WorkspaceAuth principal,
// sensitive fields for admin principals only.
func (s *Server) patchWorkspace(c *gin.Context) {
	ws := loadedWorkspace(c)
	var req patchWorkspaceRequest
	if err := bindJSON(c, &req); err != nil {
		Fail(c, err)
		return
	}
	if req.BudgetLimit != nil || req.MonthlySpend != nil {
		Fail(c, BadRequest("budget fields are not set here: use PATCH /workspaces/"+ws.ID.String()+"/budget").
			With("see", "/workspaces/"+ws.ID.String()+"/budget"))
		return
	}
	p := principal(c)
	if req.sensitive() && !p.IsAdmin() {
		Fail(c, Forbidden("parent_id, tier, runtime, workspace_dir, workspace_access and max_concurrent_tasks can only be changed by an admin"))
		return
	}
	patch, err := buildPatch(&req)
	if err != nil {
		Fail(c, err)
		return
	}
	updated, err := s.store.UpdateWorkspace(c.Request.Context(), ws.ID, patch)
	switch {
	case errors.Is(err, store.ErrCycle):
		Fail(c, BadRequest("parent_id would create a cycle: a workspace cannot sit under itself or its descendants"))
		return
	case errors.Is(err, store.ErrParentNotFound):
		Fail(c, NotFound("parent workspace not found"))
		return
	case errors.Is(err, store.ErrNotFound):
		Fail(c, NotFound("workspace not found"))
		return
	case err != nil:
		Fail(c, err)
		return
	}
	if req.ParentID != nil {
		s.InvalidateA2ATree() // a move changes the ancestry the proxy checks
	}
	needs := updated.Tier != ws.Tier || updated.Runtime != ws.Runtime || updated.WorkspaceDir != ws.WorkspaceDir
	// The canvas redraws from this, and WebSocket clients re-derive who may
	// see whose events when the tree changes.
	s.events.Broadcast(c.Request.Context(), "WORKSPACE_UPDATED", ws.ID, map[string]any{
		"name": updated.Name, "role": updated.Role, "parent_id": updated.ParentID,
		"moved": !sameParent(ws.ParentID, updated.ParentID), "x": updated.X, "y": updated.Y,
		"collapsed": updated.Collapsed, "needs_restart": needs,
	})
	v := viewFor(p, updated)
	v.NeedsRestart = &needs
	c.JSON(http.StatusOK, v)
}

func buildPatch(req *patchWorkspaceRequest) (store.WorkspacePatch, error) {
	var p store.WorkspacePatch
	if req.Name != nil {
		n := strings.TrimSpace(*req.Name)
		if n == "" {
			return p, BadRequest(`field "name" must not be empty`)
		}
		if err := checkText("name", n, maxNameLen); err != nil {
			return p, err
		}
		p.Name = &n
	}
	if req.Role != nil {
		if err := checkText("role", *req.Role, maxRoleLen); err != nil {
			return p, err
		}
		p.Role = req.Role
	}
	p.X, p.Y, p.Collapsed = req.X, req.Y, req.Collapsed
	if req.ParentID != nil {
		raw := strings.TrimSpace(string(req.ParentID))
		if raw == "null" || raw == `""` {
			p.ClearParent = true
		} else {
			var sid string
			if err := json.Unmarshal(req.ParentID, &sid); err != nil {
				return p, BadRequest(`field "parent_id" must be a UUID string or null`)
			}
			id, err := parseBodyUUID("parent_id", sid)
			if err != nil {
				return p, err
			}
			p.ParentID = &id
		}
	}
	if req.Tier != nil && (*req.Tier < 1 || *req.Tier > 4) {
		return p, BadRequest(`field "tier" must be between 1 and 4`)
	}
	p.Tier = req.Tier
	if req.Runtime != nil {
		if *req.Runtime == "" {
			return p, BadRequest(`field "runtime" must not be empty`)
		}
		if err := checkRuntime(*req.Runtime); err != nil {
			return p, err
		}
		p.Runtime = req.Runtime
	}
	if req.WorkspaceDir != nil {
		if err := checkText("workspace_dir", *req.WorkspaceDir, maxPathLen); err != nil {
			return p, err
		}
		if err := checkWorkspaceDir(*req.WorkspaceDir); err != nil {
			return p, err
		}
		p.WorkspaceDir = req.WorkspaceDir
	}
	if req.WorkspaceAccess != nil {
		if !accessModes[*req.WorkspaceAccess] {
			return p, BadRequest(`field "workspace_access" must be none, read_only or read_write`)
		}
		p.WorkspaceAccess = req.WorkspaceAccess
	}
	if req.MaxConcurrentTasks != nil && (*req.MaxConcurrentTasks < 1 || *req.MaxConcurrentTasks > 1000) {
		return p, BadRequest(`field "max_concurrent_tasks" must be between 1 and 1000`)
	}
	p.MaxConcurrentTasks = req.MaxConcurrentTasks
	return p, nil
}

// DELETE /workspaces/:id[?confirm=true]: remove it (and, confirmed, its
// subtree), revoking tokens in the same transaction, then stop containers.
func (s *Server) deleteWorkspace(c *gin.Context) {
	ws := loadedWorkspace(c)
	confirm := false
	if v := c.Query("confirm"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			Fail(c, BadRequest("confirm must be true or false"))
			return
		}
		confirm = b
	}
	ctx := c.Request.Context()
	removed, err := s.store.RemoveWorkspaceTree(ctx, ws.ID, confirm)
	var hc *store.HasChildrenError
	switch {
	case errors.As(err, &hc):
		Fail(c, newErr(http.StatusConflict, "confirmation_required",
			"this workspace has children; repeat with ?confirm=true to remove it and all its descendants").
			With("children", hc.Children).With("descendants", hc.Descendants))
		return
	case errors.Is(err, store.ErrNotFound):
		Fail(c, NotFound("workspace not found"))
		return
	case err != nil:
		Fail(c, err)
		return
	}
	s.auth.Invalidate()
	s.InvalidateA2ATree()
	bg := context.WithoutCancel(ctx)
	for _, ch := range removed {
		if !ch.External {
			if err := s.lifecycle.Remove(bg, ch.ID); err != nil {
				s.log.Error("remove workspace instance", "workspace_id", ch.ID, "err", err)
			}
		}
		s.recordTransition(bg, ch, nil)
	}
	c.JSON(http.StatusOK, gin.H{"status": store.StatusRemoved, "cascade_deleted": max(len(removed)-1, 0)})
}

func sameParent(a, b *uuid.UUID) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
