// Package api is the HTTP layer: the route table (router.go), middleware,
// the one error mapping (errors.go) and one file per resource.
package api

import (
	"context"
	"log/slog"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/moleculesai/molecule/internal/artifacts"
	"github.com/moleculesai/molecule/internal/auth"
	"github.com/moleculesai/molecule/internal/config"
	"github.com/moleculesai/molecule/internal/events"
	"github.com/moleculesai/molecule/internal/provisioner"
	"github.com/moleculesai/molecule/internal/runloop"
	"github.com/moleculesai/molecule/internal/secrets"
	"github.com/moleculesai/molecule/internal/store"
	"github.com/moleculesai/molecule/pkg/provisionhook"
)

// Deps are the server's dependencies, built and owned by internal/app.
type Deps struct {
	Config    *config.Config
	Store     *store.Store
	Auth      *auth.Authenticator
	Events    events.Publisher
	Hub       *events.Hub
	Lifecycle provisioner.Lifecycle
	Hooks     *provisionhook.Registry // nil: no provision hooks
	Keyring   *secrets.Keyring
	// Rebuilder serves restart with rebuild_config (nil: answered 503).
	Rebuilder ConfigRebuilder
	Redis     *redis.Client // nil when REDIS_URL is unset
	Loops     *runloop.Runner
	Metrics   *prometheus.Registry
	Log       *slog.Logger
	// Artifacts is the Cloudflare Artifacts client; nil when
	// CF_ARTIFACTS_API_TOKEN or CF_ARTIFACTS_NAMESPACE is unset, and then
	// every artifacts route answers 503 (§18).
	Artifacts artifacts.Service
	// Shutdown is closed when the server starts draining, so long-lived
	// streams (SSE, WebSocket) can end.
	Shutdown <-chan struct{}
}

// Server holds the handlers' dependencies. Handlers are its methods.
type Server struct {
	cfg       *config.Config
	store     *store.Store
	auth      *auth.Authenticator
	events    events.Publisher
	hub       *events.Hub
	lifecycle provisioner.Lifecycle
	hooks     *provisionhook.Registry
	keyring   *secrets.Keyring
	rebuilder ConfigRebuilder
	redis     *redis.Client
	loops     *runloop.Runner
	registry  *prometheus.Registry
	metrics   *httpMetrics
	a2a       *a2aState
	log       *slog.Logger
	shutdown  <-chan struct{}
	artifacts artifacts.Service
	now       func() time.Time
	wsTree    *treeCache // org tree shared by WebSocket event filters
	// Stream timings (tests shorten them).
	streamKeepalive  time.Duration
	streamWriteLimit time.Duration
}

// NewServer builds the server and its route table.
func NewServer(d Deps) (*Server, *gin.Engine) {
	s := &Server{
		cfg: d.Config, store: d.Store, auth: d.Auth, events: d.Events, hub: d.Hub,
		lifecycle: d.Lifecycle, hooks: d.Hooks, keyring: d.Keyring, rebuilder: d.Rebuilder, redis: d.Redis, loops: d.Loops,
		registry: d.Metrics, log: d.Log, shutdown: d.Shutdown, artifacts: d.Artifacts, now: time.Now,
	}
	if s.lifecycle == nil {
		s.lifecycle = provisioner.Unavailable{}
	}
	if s.shutdown == nil {
		s.shutdown = make(chan struct{})
	}
	s.metrics = newHTTPMetrics(d.Metrics)
	s.a2a = newA2AState(s)
	s.wsTree = newTreeCache(d.Store)
	s.streamKeepalive, s.streamWriteLimit = sseKeepalive, sseWriteLimit
	return s, s.routes()
}

// httpMetrics are the request counters and latencies by route.
type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newHTTPMetrics(reg *prometheus.Registry) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "molecule_http_requests_total", Help: "HTTP requests by method, route and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "molecule_http_request_duration_seconds", Help: "HTTP request latency by method and route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"method", "route"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

// ctxTimeout bounds a dependency call made on the request path.
func ctxTimeout(parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, d)
}
