package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/auth"
)

// sessionTTL is how long a canvas session lives.
const sessionTTL = 7 * 24 * time.Hour

// POST /auth/session {"token": <admin or org token>}: mint a canvas session
// cookie. Only admin-acting tokens may; a workspace token may not.
func (s *Server) createSession(c *gin.Context) {
	var req struct {
		Token string `json:"token"`
	}
	if err := bindJSON(c, &req); err != nil {
		Fail(c, err)
		return
	}
	if req.Token == "" {
		Fail(c, BadRequest("field \"token\" is required"))
		return
	}
	p, ok, err := s.auth.Bearer(c.Request.Context(), req.Token)
	if err != nil {
		Fail(c, err)
		return
	}
	if !ok {
		Fail(c, Unauthorized("invalid token"))
		return
	}
	if p.Kind != auth.Admin && p.Kind != auth.Org {
		Fail(c, Forbidden("only the admin token or an org token can open a canvas session"))
		return
	}
	var source *uuid.UUID
	if p.Kind == auth.Org {
		source = &p.TokenID
	}
	cookie, hash, _ := auth.NewToken()
	expires := s.now().Add(sessionTTL)
	if err := s.store.CreateSession(c.Request.Context(), hash, source, expires); err != nil {
		Fail(c, err)
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{
		Name: SessionCookie, Value: cookie, Path: "/", Expires: expires,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.servedOverTLS(c),
	})
	c.JSON(http.StatusCreated, gin.H{"status": "ok", "expires_at": expires.UTC()})
}

// DELETE /auth/session: end the session named by the cookie.
func (s *Server) deleteSession(c *gin.Context) {
	if cookie, err := c.Cookie(SessionCookie); err == nil && cookie != "" {
		if !s.sameOrigin(c.Request) {
			Fail(c, Forbidden("cross-origin request refused"))
			return
		}
		if err := s.store.RevokeSession(c.Request.Context(), auth.Hash(cookie)); err != nil {
			Fail(c, err)
			return
		}
		s.auth.Invalidate()
	}
	http.SetCookie(c.Writer, &http.Cookie{
		Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.servedOverTLS(c),
	})
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

func (s *Server) servedOverTLS(c *gin.Context) bool {
	if c.Request.TLS != nil {
		return true
	}
	return strings.HasPrefix(s.cfg.PublicURL, "https://")
}
