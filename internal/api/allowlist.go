package api

import (
	"net/http"
	"sort"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/plugins"
	"github.com/moleculesai/molecule/internal/store"
)

// maxAllowlist bounds one org's allowlist.
const maxAllowlist = 500

// loadOrg resolves :id of /orgs/:id/...: a live workspace that is the
// root of its tree. A non-root workspace is a 400 naming its org's root.
func (s *Server) loadOrg(c *gin.Context) (uuid.UUID, error) {
	id, err := pathUUID(c, "id")
	if err != nil {
		return uuid.Nil, err
	}
	ws, err := s.store.GetWorkspace(c.Request.Context(), id)
	if err != nil {
		if err == store.ErrNotFound {
			return uuid.Nil, NotFound("org not found")
		}
		return uuid.Nil, err
	}
	if ws.ParentID != nil {
		root, err := s.orgOf(c.Request.Context(), id)
		if err != nil {
			return uuid.Nil, err
		}
		return uuid.Nil, BadRequest("workspace is not the root of an org; use its root").With("org_id", root)
	}
	return id, nil
}

func allowlistBody(org uuid.UUID, entries []store.AllowlistEntry) gin.H {
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name
	}
	return gin.H{"org_id": org, "plugins": names, "entries": entries, "allow_all": len(entries) == 0}
}

// getPluginAllowlist handles GET /orgs/:id/plugins/allowlist.
func (s *Server) getPluginAllowlist(c *gin.Context) {
	org, err := s.loadOrg(c)
	if err != nil {
		Fail(c, err)
		return
	}
	entries, err := s.store.PluginAllowlist(c.Request.Context(), org)
	if err != nil {
		Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, allowlistBody(org, entries))
}

type allowlistRequest struct {
	Plugins   *[]string `json:"plugins"`
	EnabledBy string    `json:"enabled_by"`
}

// putPluginAllowlist handles PUT /orgs/:id/plugins/allowlist: replace the
// list in one transaction. An empty list allows every plugin.
func (s *Server) putPluginAllowlist(c *gin.Context) {
	org, err := s.loadOrg(c)
	if err != nil {
		Fail(c, err)
		return
	}
	var req allowlistRequest
	if err := bindJSON(c, &req); err != nil {
		Fail(c, err)
		return
	}
	if req.Plugins == nil {
		Fail(c, BadRequest(`field "plugins" is required (an empty list allows every plugin)`))
		return
	}
	if err := checkText("enabled_by", req.EnabledBy, 128); err != nil {
		Fail(c, err)
		return
	}
	if len(*req.Plugins) > maxAllowlist {
		Fail(c, BadRequest("an allowlist holds at most 500 plugins"))
		return
	}
	seen := map[string]bool{}
	names := []string{}
	for _, n := range *req.Plugins {
		n = strings.TrimSpace(n)
		if !plugins.ValidName(n) {
			Fail(c, BadRequest(`field "plugins" must hold plugin names (1-64 lower-case letters, digits, '.', '_' or '-')`))
			return
		}
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	sort.Strings(names)
	entries, err := s.store.ReplacePluginAllowlist(c.Request.Context(), org, names, req.EnabledBy)
	if err != nil {
		if err == store.ErrNotFound {
			err = NotFound("org not found")
		}
		Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, allowlistBody(org, entries))
}
