package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// GET /health: the process is up; no dependencies are checked.
func (s *Server) health(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// GET /readyz: Postgres and, when configured, Redis answer.
func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := ctxTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	checks := gin.H{"postgres": "ok"}
	ready := true
	if err := s.store.Ping(ctx); err != nil {
		checks["postgres"] = "unreachable"
		ready = false
	}
	if s.redis != nil {
		checks["redis"] = "ok"
		if err := s.redis.Ping(ctx).Err(); err != nil {
			checks["redis"] = "unreachable"
			ready = false
		}
	}
	if !ready {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "code": CodeUnavailable,
			"error": "a dependency is unreachable", "checks": checks})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready", "checks": checks})
}

// GET /metrics: Prometheus exposition of this server's registry.
func (s *Server) promMetrics(c *gin.Context) {
	promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}).ServeHTTP(c.Writer, c.Request)
}

// GET /admin/liveness: each background loop's last tick and the
// provisioner backend in use.
func (s *Server) adminLiveness(c *gin.Context) {
	loops := []any{}
	if s.loops != nil {
		for _, l := range s.loops.Statuses() {
			loops = append(loops, l)
		}
	}
	c.JSON(http.StatusOK, gin.H{
		"provisioner": s.lifecycle.Backend(),
		"redis":       s.redis != nil,
		"loops":       loops,
		"time":        s.now().UTC(),
	})
}
