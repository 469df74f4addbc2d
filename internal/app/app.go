// Package app wires the platform together: New builds every part from a
// Config, Run serves until its context ends, Close releases what New took.
// End-to-end tests boot it on :0.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/moleculesai/molecule/internal/api"
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

// App is a running platform server.
type App struct {
	Config      *config.Config
	Log         *slog.Logger
	Store       *store.Store
	Redis       *redis.Client
	Auth        *auth.Authenticator
	Keyring     *secrets.Keyring
	Hub         *events.Hub
	Broadcaster *events.Broadcaster
	Lifecycle   provisioner.Lifecycle
	// Provisioning is the Lifecycle's implementation; Hooks the provision
	// hooks (the built-in GitHub App provider registers there).
	Provisioning *provisioner.Manager
	Hooks        *provisionhook.Registry
	Loops        *runloop.Runner
	Metrics      *prometheus.Registry
	Server       *api.Server
	Handler      http.Handler

	// AdminTokenFile is where a generated admin token lives ("" when
	// ADMIN_TOKEN was given).
	AdminTokenFile string
	adminToken     string

	shutdown     chan struct{}
	shutdownOnce sync.Once
	listener     net.Listener
	closers      []func() error
}

// New builds the platform: opens Postgres (and Redis), applies migrations,
// loads or generates the admin token and secrets key, and builds the API.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (*App, error) {
	a := &App{Config: cfg, Log: log, shutdown: make(chan struct{}), Metrics: prometheus.NewRegistry()}
	a.Metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := a.build(ctx); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

func (a *App) build(ctx context.Context) error {
	cfg, log := a.Config, a.Log
	if err := a.loadCredentials(); err != nil {
		return err
	}

	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	a.Store = st
	a.closers = append(a.closers, st.Close)
	if err := store.Migrate(st.DB); err != nil {
		return err
	}

	var transport events.Transport
	if cfg.RedisURL != "" {
		opts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return fmt.Errorf("REDIS_URL: %w", err)
		}
		// Short timeouts everywhere: a hung Redis must not stall requests.
		opts.DialTimeout = 2 * time.Second
		opts.ReadTimeout = 500 * time.Millisecond
		opts.WriteTimeout = 500 * time.Millisecond
		opts.PoolTimeout = time.Second
		a.Redis = redis.NewClient(opts)
		a.closers = append(a.closers, a.Redis.Close)
		transport = events.NewRedisTransport(a.Redis, cfg.RedisPrefix+":events", log)
	}

	a.Auth = auth.New(a.adminToken, st)
	a.Hub = events.NewHub()
	a.Broadcaster = events.NewBroadcaster(st, transport, a.Hub, log)
	a.Loops = runloop.NewRunner(log)
	if err := a.buildProvisioning(ctx); err != nil {
		return err
	}

	var art artifacts.Service // nil: the artifacts routes answer 503
	if cfg.ArtifactsEnabled() {
		art = artifacts.New(cfg.CFArtifactsAPIURL, cfg.CFArtifactsNamespace, cfg.CFArtifactsAPIToken, nil)
		log.Info("cloudflare artifacts enabled", "api_url", cfg.CFArtifactsAPIURL, "namespace", cfg.CFArtifactsNamespace)
	}

	srv, handler := api.NewServer(api.Deps{
		Config: cfg, Store: st, Auth: a.Auth, Events: a.Broadcaster, Hub: a.Hub,
		Lifecycle: a.Lifecycle, Hooks: a.Hooks, Rebuilder: a.Provisioning, Keyring: a.Keyring, Redis: a.Redis, Loops: a.Loops,
		Metrics: a.Metrics, Log: log, Shutdown: a.shutdown, Artifacts: art,
	})
	a.Server, a.Handler = srv, handler
	return nil
}

// loadCredentials takes ADMIN_TOKEN and SECRETS_ENCRYPTION_KEY from the
// config or generates them in the data directory on first start.
func (a *App) loadCredentials() error {
	cfg := a.Config
	a.adminToken = cfg.AdminToken
	if a.adminToken == "" {
		token, path, created, err := loadOrCreateAdminToken(cfg.DataDir)
		if err != nil {
			return err
		}
		a.adminToken, a.AdminTokenFile = token, path
		abs, _ := filepath.Abs(path)
		if created {
			a.Log.Info("generated the admin token; read it from its file", "admin_token_file", abs)
		} else {
			a.Log.Info("admin token loaded", "admin_token_file", abs)
		}
	}
	var key []byte
	var err error
	if cfg.SecretsKey != "" {
		if key, err = secrets.ParseKey(cfg.SecretsKey); err != nil {
			return fmt.Errorf("SECRETS_ENCRYPTION_KEY: %w", err)
		}
	} else {
		path := filepath.Join(cfg.DataDir, "secrets.key")
		if key, err = secrets.LoadOrCreateKeyFile(path); err != nil {
			return fmt.Errorf("MOLECULE_DATA_DIR: secrets key: %w", err)
		}
	}
	old, err := secrets.ParseOldKeys(cfg.SecretsOldKey)
	if err != nil {
		return fmt.Errorf("MOLECULE_SECRETS_OLD_KEYS: %w", err)
	}
	a.Keyring, err = secrets.NewKeyring(secrets.Key{ID: secrets.KeyID(key), Secret: key}, old...)
	if err != nil {
		return fmt.Errorf("SECRETS_ENCRYPTION_KEY: %w", err)
	}
	return nil
}

// AdminToken returns the admin bearer (tests and the CLI use it).
func (a *App) AdminToken() string { return a.adminToken }

// Listen binds the configured address (":0" picks a free port).
func (a *App) Listen() (net.Listener, error) {
	if a.listener != nil {
		return a.listener, nil
	}
	ln, err := net.Listen("tcp", a.Config.Listen)
	if err != nil {
		return nil, fmt.Errorf("MOLECULE_LISTEN: %w", err)
	}
	a.listener = ln
	return ln, nil
}

// Run serves and runs background loops until ctx ends, then drains:
// stop accepting, end streams, finish in-flight requests, stop loops.
func (a *App) Run(ctx context.Context) error {
	ln, err := a.Listen()
	if err != nil {
		return err
	}
	loopCtx, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoops()
	go a.Broadcaster.Run(loopCtx)
	a.startLoops(loopCtx)
	// The API's background work (A2A metering and activity batches,
	// delegations) ends after the HTTP drain and writes what is left.
	bgDone := make(chan struct{})
	go func() { a.Server.RunBackground(loopCtx); close(bgDone) }()

	srv := &http.Server{Handler: a.Handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	a.Log.Info("molecule platform listening", "addr", ln.Addr().String(), "provisioner", a.Lifecycle.Backend(),
		"redis", a.Redis != nil)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	a.Log.Info("shutting down: draining requests and streams")
	a.shutdownOnce.Do(func() { close(a.shutdown) })
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	stopLoops()
	<-bgDone
	a.Loops.Wait()
	// Last-use times batched in memory are written before the pool closes.
	fctx, fcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer fcancel()
	if ferr := a.Auth.FlushLastUsed(fctx); ferr != nil {
		a.Log.Warn("flush token last-use times", "err", ferr)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// startLoops starts the periodic background work.
func (a *App) startLoops(ctx context.Context) {
	a.Loops.Start(ctx, runloop.Loop{Name: "token-last-used", Interval: 10 * time.Second, Fn: a.Auth.FlushLastUsed})
	a.Loops.Start(ctx, runloop.Loop{Name: "retention", Interval: retentionInterval, Fn: a.PruneRetention})
	// Liveness (§5): both claim rows atomically, safe with several replicas.
	a.Loops.Start(ctx, runloop.Loop{Name: "liveness-offline", Interval: a.Config.SweepInterval, Fn: a.Server.SweepOffline})
	a.Loops.Start(ctx, runloop.Loop{Name: "liveness-provision-timeout", Interval: a.Config.SweepInterval, Fn: a.Server.SweepProvisionTimeouts})
	if a.Provisioning != nil && a.Provisioning.Backend() != "none" {
		a.Loops.Start(ctx, runloop.Loop{Name: "provisioner-instances", Interval: a.Config.SweepInterval, Fn: a.Provisioning.WatchInstances})
		a.Loops.Start(ctx, runloop.Loop{Name: "provisioner-orphans", Interval: 4 * a.Config.SweepInterval, Fn: a.Provisioning.SweepOrphans})
	}
}

// Close releases pools and connections.
func (a *App) Close() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		if err := a.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	a.closers = nil
	return errors.Join(errs...)
}

// NewLogger builds the server's logger from LOG_LEVEL and LOG_FORMAT.
func NewLogger(cfg *config.Config) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(strings.ToLower(cfg.LogLevel)))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts))
}
