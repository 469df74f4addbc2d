package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/provisioner"
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

// configRebuilder is implemented by the provisioning Manager: restart
// with rebuild_config (§2) calls it before provisioning.
type configRebuilder interface {
	RebuildConfig(ctx context.Context, wsID uuid.UUID) error
}

// rebuildConfig marks the workspace's next provisioning to regenerate its
// config from the matching org template. 404 when no template matches;
// 503 when the server has no provisioner.
func (s *Server) rebuildConfig(ctx context.Context, wsID uuid.UUID) error {
	rb, ok := s.lifecycle.(configRebuilder)
	if !ok {
		return provisioner.ErrNoBackend
	}
	err := rb.RebuildConfig(ctx, wsID)
	if errors.Is(err, provisioner.ErrNoTemplateMatch) {
		return NotFound("rebuild_config: " + provisioner.ErrNoTemplateMatch.Error())
	}
	return err
}
