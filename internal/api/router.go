package api

import (
	"time"

	"github.com/gin-gonic/gin"
)

// routes is THE route table: every route and the middleware guarding it.
// Tiers (DESIGN §4): identify (global, never rejects) → require a kind of
// principal (group) → load the path resource (workspaceAuth).
//
// Each area keeps its block below; add routes inside your area's block.
func (s *Server) routes() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true
	r.NoRoute(func(c *gin.Context) { Fail(c, NotFound("no such route")) })
	r.NoMethod(func(c *gin.Context) { Fail(c, newErr(405, CodeInvalidRequest, "method not allowed")) })

	r.Use(s.requestID, s.observe, s.recovery, s.limitBody, s.identify)
	if s.cfg.RateLimit > 0 {
		rl := &rateLimiter{limit: s.cfg.RateLimit, counts: map[string]int{}, now: time.Now}
		r.Use(rl.handle)
	}

	// ---- open ----
	r.GET("/health", s.health)
	r.GET("/readyz", s.readyz)
	r.GET("/openapi.json", s.openAPI)
	r.POST("/auth/session", s.createSession)
	// Ending a session needs only the cookie being ended.
	r.DELETE("/auth/session", s.deleteSession)

	if s.cfg.MetricsPublic {
		r.GET("/metrics", s.promMetrics)
	} else {
		r.GET("/metrics", requireAdmin, s.promMetrics)
	}

	admin := r.Group("", requireAdmin)
	ws := r.Group("/workspaces/:id", s.workspaceAuth)

	// ---- operations (§19) ----
	admin.GET("/admin/liveness", s.adminLiveness)

	// ---- org tokens (§3) ----
	admin.GET("/org/tokens", s.listOrgTokens)
	admin.POST("/org/tokens", s.createOrgToken)
	admin.DELETE("/org/tokens/:tokenId", s.revokeOrgToken)

	// ---- workspaces, tokens, secrets (§2–§4) ----

	// ---- registry and liveness (§5) ----

	// ---- a2a, delegation, budget, metrics, activity (§6–§8, §11) ----
	// The proxy has its own guard (any workspace token that may talk to
	// :id, or an admin principal) and loads nothing per call (a2a.go).
	r.POST("/workspaces/:id/a2a", bodyLimit(a2aMaxRequest), s.proxyA2A)
	ws.GET("/budget", s.getBudget)
	ws.PATCH("/budget", requireAdmin, s.patchBudget)
	ws.GET("/metrics", s.getMetrics)
	ws.POST("/delegate", s.delegate)
	ws.GET("/delegations", s.listDelegations)
	ws.GET("/activity", s.listActivity)
	ws.POST("/activity", s.postActivity)

	// ---- memory and events (§9–§10) ----

	// ---- provisioning, files, templates, github tokens (§12–§13) ----

	// ---- org templates, plugins, allowlist (§14–§15) ----

	// ---- artifacts (§18) ----

	_ = ws
	_ = r.Group("/registry")
	return r
}
