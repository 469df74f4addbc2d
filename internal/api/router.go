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
	admin.POST("/workspaces", s.createWorkspace)
	admin.GET("/workspaces", s.listWorkspaces)
	ws.GET("", s.getWorkspace)
	ws.PATCH("", s.patchWorkspace)
	ws.DELETE("", requireAdmin, s.deleteWorkspace)
	ws.POST("/restart", s.restartWorkspace)
	ws.POST("/pause", s.pauseWorkspace)
	ws.POST("/resume", s.resumeWorkspace)
	ws.GET("/tokens", s.listWorkspaceTokens)
	ws.POST("/tokens", s.createWorkspaceToken)
	ws.DELETE("/tokens/:tokenId", s.revokeWorkspaceToken)
	ws.GET("/secrets", s.listWorkspaceSecrets)
	ws.PUT("/secrets", s.putWorkspaceSecret)
	ws.DELETE("/secrets/:key", s.deleteWorkspaceSecret)
	admin.GET("/settings/secrets", s.listGlobalSecrets)
	admin.PUT("/settings/secrets", s.putGlobalSecret)
	admin.DELETE("/settings/secrets/:key", s.deleteGlobalSecret)

	// ---- registry and liveness (§5) ----
	// Agent routes: a workspace token, whose workspace the body must name.
	registry := r.Group("/registry")
	registry.POST("/register", requireWorkspace, s.registerAgent)
	registry.POST("/heartbeat", requireWorkspace, s.heartbeat)
	registry.POST("/update-card", requireWorkspace, s.updateAgentCard)
	registry.GET("/discover/:id", requireWorkspace, s.discover)
	registry.GET("/:id/peers", s.workspaceAuth, s.peers)
	registry.POST("/check-access", requireAny, s.checkAccess)

	// ---- a2a, delegation, budget, metrics, activity (§6–§8, §11) ----
	// The proxy is outside WorkspaceAuth: any authenticated principal may
	// call, and the handler admits a workspace token only when it may talk
	// to :id (§6); it loads nothing from the database per call (a2a.go).
	r.POST("/workspaces/:id/a2a", requireAny, bodyLimit(a2aMaxRequest), s.proxyA2A)
	ws.GET("/budget", s.getBudget)
	ws.PATCH("/budget", requireAdmin, s.patchBudget)
	ws.GET("/metrics", s.getMetrics)
	ws.POST("/delegate", s.delegate)
	ws.GET("/delegations", s.listDelegations)
	ws.GET("/activity", s.listActivity)
	ws.POST("/activity", s.postActivity)

	// ---- memory and events (§9–§10) ----
	ws.GET("/memory", s.listMemory)
	ws.POST("/memory", s.setMemory)
	ws.GET("/memory/:key", s.getMemory)
	ws.DELETE("/memory/:key", s.deleteMemory)
	ws.GET("/memories", s.searchMemories)
	ws.POST("/memories", s.commitMemory)
	ws.DELETE("/memories/:memoryId", s.deleteAgentMemory)
	ws.GET("/events/stream", s.streamEvents)
	r.GET("/ws", requireAny, s.eventsSocket)
	admin.GET("/events", s.listEvents)
	admin.GET("/events/:workspaceId", s.listWorkspaceEvents)

	// ---- provisioning, files, templates, github tokens (§12–§13) ----
	admin.GET("/admin/github-installation-token", s.githubInstallationToken)
	ws.GET("/github-installation-token", s.githubInstallationToken)
	ws.GET("/files", s.listFiles)
	ws.PUT("/files", bodyLimit(maxFilesBody), s.writeFileSet)
	ws.GET("/files/*path", s.readFile)
	ws.PUT("/files/*path", bodyLimit(maxFilesBody), s.writeFile)
	ws.DELETE("/files/*path", s.deleteFile)
	admin.GET("/templates", s.listTemplates)
	admin.POST("/templates/import", bodyLimit(maxFilesBody), s.importTemplate)

	// ---- org templates, plugins, allowlist (§14–§15) ----
	admin.GET("/org/templates", s.listOrgTemplates)
	admin.POST("/org/import", s.importOrg)
	admin.GET("/plugins", s.listPlugins)
	admin.GET("/orgs/:id/plugins/allowlist", s.getPluginAllowlist)
	admin.PUT("/orgs/:id/plugins/allowlist", s.putPluginAllowlist)
	ws.GET("/plugins", s.listWorkspacePlugins)
	ws.POST("/plugins", s.installPlugin)
	ws.DELETE("/plugins/:name", s.uninstallPlugin)

	// ---- artifacts (§18) ----
	art := ws.Group("/artifacts", s.requireArtifacts)
	art.POST("", s.createArtifact)
	art.GET("", s.getArtifact)
	art.POST("/fork", s.forkArtifact)
	art.POST("/token", s.createArtifactToken)

	return r
}
