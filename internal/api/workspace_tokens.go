package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/auth"
	"github.com/moleculesai/molecule/internal/store"
)

// GET /workspaces/:id/tokens: live tokens, newest first (never the secret).
func (s *Server) listWorkspaceTokens(c *gin.Context) {
	limit, offset, err := page(c, 50, 200)
	if err != nil {
		Fail(c, err)
		return
	}
	ws := loadedWorkspace(c)
	tokens, total, err := s.store.ListWorkspaceTokens(c.Request.Context(), ws.ID, limit, offset)
	if err != nil {
		Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"tokens": tokens, "total": total, "limit": limit, "offset": offset})
}

// POST /workspaces/:id/tokens {name?}: mint a token; plaintext shown once.
func (s *Server) createWorkspaceToken(c *gin.Context) {
	var req struct {
		Name string `json:"name"`
	}
	if err := bindOptionalJSON(c, &req); err != nil {
		Fail(c, err)
		return
	}
	if err := checkText("name", req.Name, 128); err != nil {
		Fail(c, err)
		return
	}
	ws := loadedWorkspace(c)
	plain, hash, prefix := auth.NewToken()
	info, err := s.store.CreateWorkspaceToken(c.Request.Context(), store.NewTokenRow{
		ID: uuid.New(), WorkspaceID: ws.ID, Name: req.Name, Hash: hash, Prefix: prefix,
	})
	if err != nil {
		Fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"id": info.ID, "name": info.Name, "prefix": info.Prefix,
		"created_at": info.CreatedAt, "auth_token": plain})
}

// DELETE /workspaces/:id/tokens/:tokenId: revoke one of this workspace's
// tokens; takes effect at once on this replica.
func (s *Server) revokeWorkspaceToken(c *gin.Context) {
	id, err := pathUUID(c, "tokenId")
	if err != nil {
		Fail(c, err)
		return
	}
	ws := loadedWorkspace(c)
	if err := s.store.RevokeWorkspaceToken(c.Request.Context(), ws.ID, id); err != nil {
		if err == store.ErrNotFound {
			Fail(c, NotFound("token not found for this workspace"))
			return
		}
		Fail(c, err)
		return
	}
	s.auth.Invalidate()
	c.JSON(http.StatusOK, gin.H{"status": "revoked", "id": id})
}
