package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// GET /admin/github-installation-token and
// GET /workspaces/:id/github-installation-token (§12.1): the token of the
// first registered TokenProvider. 404 when none is configured; a provider
// failure is a generic 500 (its error is logged, the token never is).
func (s *Server) githubInstallationToken(c *gin.Context) {
	tp := s.hooks.FirstTokenProvider()
	if tp == nil {
		Fail(c, NotFound("no GitHub token provider is configured"))
		return
	}
	ctx, cancel := ctxTimeout(c.Request.Context(), 30*time.Second)
	defer cancel()
	token, exp, err := tp.Token(ctx)
	if err != nil || token == "" {
		if err == nil {
			err = errors.New("token provider returned an empty token")
		}
		Fail(c, &Error{Status: http.StatusInternalServerError, Code: CodeInternal,
			Message: "could not obtain a GitHub installation token", Err: err})
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"token": token, "expires_at": exp.UTC()})
}
