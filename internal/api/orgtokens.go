package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/auth"
	"github.com/moleculesai/molecule/internal/store"
)

// GET /org/tokens: live org API tokens (never the secret).
func (s *Server) listOrgTokens(c *gin.Context) {
	limit, offset, err := page(c, 50, 200)
	if err != nil {
		Fail(c, err)
		return
	}
	tokens, total, err := s.store.ListOrgTokens(c.Request.Context(), limit, offset)
	if err != nil {
		Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"tokens": tokens, "total": total, "limit": limit, "offset": offset})
}

// POST /org/tokens {name}: mint an org token; the plaintext is shown once.
func (s *Server) createOrgToken(c *gin.Context) {
	var req struct {
		Name string `json:"name"`
	}
	if err := bindJSON(c, &req); err != nil {
		Fail(c, err)
		return
	}
	if req.Name == "" {
		Fail(c, BadRequest("field \"name\" is required"))
		return
	}
	if err := checkText("name", req.Name, 128); err != nil {
		Fail(c, err)
		return
	}
	plain, hash, prefix := auth.NewToken()
	info, err := s.store.CreateOrgToken(c.Request.Context(), store.NewTokenRow{
		ID: uuid.New(), Name: req.Name, Hash: hash, Prefix: prefix,
	})
	if err != nil {
		Fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"id": info.ID, "name": info.Name, "prefix": info.Prefix,
		"created_at": info.CreatedAt, "auth_token": plain})
}

// DELETE /org/tokens/:tokenId: revoke; takes effect at once on this replica.
func (s *Server) revokeOrgToken(c *gin.Context) {
	id, err := pathUUID(c, "tokenId")
	if err != nil {
		Fail(c, err)
		return
	}
	if err := s.store.RevokeOrgToken(c.Request.Context(), id); err != nil {
		if err == store.ErrNotFound {
			Fail(c, NotFound("org token not found"))
			return
		}
		Fail(c, err)
		return
	}
	s.auth.Invalidate()
	c.JSON(http.StatusOK, gin.H{"status": "revoked", "id": id})
}
