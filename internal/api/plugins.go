package api

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/plugins"
	"github.com/moleculesai/molecule/internal/provisioner"
	"github.com/moleculesai/molecule/internal/store"
)

// Plugin events (§10).
const (
	eventPluginInstalled   = "PLUGIN_INSTALLED"
	eventPluginBlocked     = "PLUGIN_BLOCKED"
	eventPluginUninstalled = "PLUGIN_UNINSTALLED"
)

func (s *Server) pluginStager() *plugins.Stager {
	return &plugins.Stager{PluginsDir: s.cfg.PluginsDir, GitBaseURL: s.cfg.PluginGitBaseURL, Limits: plugins.DefaultLimits()}
}

// pluginErr maps a plugins.Error to its answer; its Msg is client-safe.
func pluginErr(err error) error {
	var pe *plugins.Error
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Kind {
	case plugins.KindInvalid, plugins.KindTooLarge:
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Message: pe.Msg, Err: err}
	case plugins.KindNotFound:
		return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: pe.Msg, Err: err}
	default:
		return &Error{Status: http.StatusBadGateway, Code: CodeUpstream, Message: pe.Msg, Err: err}
	}
}

// listPlugins handles GET /plugins: the local registry.
func (s *Server) listPlugins(c *gin.Context) {
	list, err := plugins.List(s.cfg.PluginsDir)
	if err != nil {
		Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, list)
}

// listWorkspacePlugins handles GET /workspaces/:id/plugins.
func (s *Server) listWorkspacePlugins(c *gin.Context) {
	list, err := s.store.ListWorkspacePlugins(c.Request.Context(), loadedWorkspace(c).ID)
	if err != nil {
		Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, list)
}

var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

type installPluginRequest struct {
	Source string  `json:"source"`
	SHA256 *string `json:"sha256"`
}

// orgOf returns the root of a workspace's tree (its org, §15).
func (s *Server) orgOf(ctx context.Context, wsID uuid.UUID) (uuid.UUID, error) {
	chains, err := s.store.AncestorChains(ctx, wsID)
	if err != nil {
		return uuid.Nil, err
	}
	chain := chains[wsID]
	if len(chain) == 0 {
		return uuid.Nil, NotFound("workspace not found")
	}
	return chain[len(chain)-1], nil
}

// installPlugin handles POST /workspaces/:id/plugins: resolve → stage →
// verify (sha256, runtime) → org allowlist gate → deliver into
// /configs/plugins/<name> → restart. Nothing reaches the workspace before
// the gate has passed.
func (s *Server) installPlugin(c *gin.Context) {
	ctx := c.Request.Context()
	ws := loadedWorkspace(c)
	var req installPluginRequest
	if err := bindJSON(c, &req); err != nil {
		Fail(c, err)
		return
	}
	if err := checkText("source", req.Source, 512); err != nil {
		Fail(c, err)
		return
	}
	src, err := plugins.ParseSource(strings.TrimSpace(req.Source))
	if err != nil {
		Fail(c, pluginErr(err))
		return
	}
	want := ""
	if req.SHA256 != nil {
		want = strings.ToLower(strings.TrimSpace(*req.SHA256))
		if !sha256RE.MatchString(want) {
			Fail(c, BadRequest(`field "sha256" must be 64 hexadecimal characters`))
			return
		}
	}
	staged, err := s.pluginStager().Stage(ctx, src)
	if err != nil {
		Fail(c, pluginErr(err))
		return
	}
	defer staged.Close()
	m := staged.Manifest
	if want != "" && want != staged.Digest {
		Fail(c, BadRequest("plugin sha256 does not match: the source holds different content than expected").With("sha256", staged.Digest))
		return
	}
	if !m.SupportsRuntime(ws.Runtime) {
		Fail(c, BadRequest("plugin "+m.Name+" does not support runtime "+ws.Runtime).With("runtimes", m.Runtimes))
		return
	}

	// The gate: before any file can reach the workspace.
	org, err := s.orgOf(ctx, ws.ID)
	if err != nil {
		Fail(c, err)
		return
	}
	allowed, err := s.store.PluginAllowed(ctx, org, m.Name)
	if err != nil {
		Fail(c, err)
		return
	}
	if !allowed {
		s.events.Record(ctx, eventPluginBlocked, ws.ID, gin.H{"plugin": m.Name, "source": src.String(), "org_id": org})
		Fail(c, Forbidden("plugin not on org allowlist"))
		return
	}
	if ws.External {
		Fail(c, Conflict("an external workspace runs its own agent: plugins cannot be delivered to it"))
		return
	}

	files, err := staged.ReadFiles()
	if err != nil {
		Fail(c, err)
		return
	}
	dir := "plugins/" + m.Name
	out := make(map[string][]byte, len(files))
	for p, data := range files {
		out[dir+"/"+p] = data
	}
	// Replace, not merge: files the new version dropped must not linger.
	if err := s.lifecycle.DeletePath(ctx, ws.ID, dir); err != nil && !isMissing(err) {
		Fail(c, err)
		return
	}
	if err := s.lifecycle.WriteFiles(ctx, ws.ID, out); err != nil {
		if derr := s.store.DeleteWorkspacePlugin(ctx, ws.ID, m.Name); derr != nil && !errors.Is(derr, store.ErrNotFound) {
			s.log.Error("plugin install: forget failed install", "workspace_id", ws.ID, "err", derr)
		}
		Fail(c, err)
		return
	}
	row := &store.InstalledPlugin{Name: m.Name, Version: m.Version, Source: src.String(), SHA256: staged.Digest,
		Files: len(staged.Files), Bytes: staged.Bytes}
	created, err := s.store.UpsertWorkspacePlugin(ctx, ws.ID, row)
	if err != nil {
		Fail(c, err)
		return
	}
	s.events.Record(ctx, eventPluginInstalled, ws.ID, gin.H{"plugin": m.Name, "version": m.Version, "source": src.String(), "sha256": staged.Digest})
	restarting := s.restartForPlugins(ctx, ws.ID)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	dropped := staged.Dropped
	if dropped == nil {
		dropped = []string{}
	}
	c.JSON(status, gin.H{
		"name": row.Name, "version": row.Version, "source": row.Source, "sha256": row.SHA256,
		"files": row.Files, "bytes": row.Bytes, "installed_at": row.InstalledAt,
		"dropped": dropped, "restarting": restarting,
	})
}

// restartForPlugins re-provisions the workspace so its agent loads the
// change; failures are logged (the files are in place for the next start).
func (s *Server) restartForPlugins(ctx context.Context, wsID uuid.UUID) bool {
	if err := s.lifecycle.Provision(ctx, wsID); err != nil {
		s.log.Warn("plugin change: restart failed", "workspace_id", wsID, "err", err)
		return false
	}
	return true
}

func isMissing(err error) bool {
	return errors.Is(err, provisioner.ErrNotFound) || errors.Is(err, store.ErrNotFound)
}

// uninstallPlugin handles DELETE /workspaces/:id/plugins/:name.
func (s *Server) uninstallPlugin(c *gin.Context) {
	ctx := c.Request.Context()
	ws := loadedWorkspace(c)
	name := c.Param("name")
	if !plugins.ValidName(name) {
		Fail(c, BadRequest("invalid plugin name"))
		return
	}
	if _, err := s.store.GetWorkspacePlugin(ctx, ws.ID, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = NotFound("plugin not installed")
		}
		Fail(c, err)
		return
	}
	if !ws.External {
		if err := s.lifecycle.DeletePath(ctx, ws.ID, "plugins/"+name); err != nil && !isMissing(err) {
			Fail(c, err)
			return
		}
	}
	if err := s.store.DeleteWorkspacePlugin(ctx, ws.ID, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = NotFound("plugin not installed")
		}
		Fail(c, err)
		return
	}
	s.events.Record(ctx, eventPluginUninstalled, ws.ID, gin.H{"plugin": name})
	restarting := false
	if !ws.External {
		restarting = s.restartForPlugins(ctx, ws.ID)
	}
	c.JSON(http.StatusOK, gin.H{"status": "uninstalled", "name": name, "restarting": restarting})
}
