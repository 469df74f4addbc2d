package api

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/moleculesai/molecule/internal/apptest/kit"
	"github.com/moleculesai/molecule/internal/auth"
	"github.com/moleculesai/molecule/internal/config"
	"github.com/moleculesai/molecule/internal/events"
	"github.com/moleculesai/molecule/internal/provisioner"
	"github.com/moleculesai/molecule/internal/provisioner/provisionertest"
	"github.com/moleculesai/molecule/internal/runloop"
	"github.com/moleculesai/molecule/internal/secrets"
	"github.com/moleculesai/molecule/internal/store"
	"github.com/moleculesai/molecule/internal/testutil"
)

// This file is the one way the API's tests (package api and, through
// these exported test-only names, package api_test) build a Server with
// injected dependencies. Tests of the whole platform use apptest.Start.

// TestServerOptions tune NewTestServer; the zero value is a server on a
// fresh database with a recording provisioner.
type TestServerOptions struct {
	// Env overrides configuration variables (ADMIN_TOKEN, timings, …).
	Env map[string]string
	// Lifecycle is the provisioner; nil: a fresh provisionertest.Lifecycle
	// (TestServer.LC).
	Lifecycle provisioner.Lifecycle
	// Rebuilder serves restart with rebuild_config (nil: 503).
	Rebuilder ConfigRebuilder
	// Store replaces the fresh database (e.g. store.New on a sqlmock).
	Store *store.Store
	// Lookup resolves tokens; nil: the store.
	Lookup auth.Lookup
	// Log receives the server's log; nil: discarded.
	Log io.Writer
	// Shutdown is the server's draining signal.
	Shutdown chan struct{}
	// Background runs the server's background work until the test ends.
	Background bool
}

// TestServer is a Server behind an httptest server, with what it was
// built from.
type TestServer struct {
	t       testing.TB
	Server  *Server
	Handler http.Handler
	URL     string
	Admin   string // the admin bearer
	Store   *store.Store
	Hub     *events.Hub
	Keyring *secrets.Keyring
	Metrics *prometheus.Registry
	// LC is the recording provisioner when Options.Lifecycle was nil.
	LC *provisionertest.Lifecycle
}

// NewTestServer builds and serves a Server; everything stops when the test
// ends.
func NewTestServer(t testing.TB, o TestServerOptions) *TestServer {
	t.Helper()
	env := map[string]string{"DATABASE_URL": "postgres://unused/db", "ADMIN_TOKEN": "admin-" + uuid.NewString(),
		"MOLECULE_DATA_DIR": t.TempDir(), "MOLECULE_PROVISIONER": "none"}
	for k, v := range o.Env {
		env[k] = v
	}
	cfg, err := config.Load(config.FromMap(env))
	if err != nil {
		t.Fatal(err)
	}
	ts := &TestServer{t: t, Admin: cfg.AdminToken, Store: o.Store, Hub: events.NewHub(), Metrics: prometheus.NewRegistry()}
	if ts.Store == nil {
		ts.Store = testutil.NewStore(t)
	}
	var lookup auth.Lookup = ts.Store
	if o.Lookup != nil {
		lookup = o.Lookup
	}
	lc := o.Lifecycle
	if lc == nil {
		ts.LC = provisionertest.New()
		lc = ts.LC
	}
	w := o.Log
	if w == nil {
		w = io.Discard
	}
	log := slog.New(slog.NewTextHandler(w, nil))
	key := make([]byte, secrets.KeySize)
	_, _ = rand.Read(key)
	if ts.Keyring, err = secrets.NewKeyring(secrets.Key{ID: secrets.KeyID(key), Secret: key}); err != nil {
		t.Fatal(err)
	}
	ts.Server, ts.Handler = NewServer(Deps{Config: cfg, Store: ts.Store, Auth: auth.New(cfg.AdminToken, lookup),
		Events: events.NewBroadcaster(ts.Store, nil, ts.Hub, log), Hub: ts.Hub, Lifecycle: lc, Keyring: ts.Keyring,
		Rebuilder: o.Rebuilder, Loops: runloop.NewRunner(log), Metrics: ts.Metrics, Log: log, Shutdown: o.Shutdown})
	if o.Background {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { ts.Server.RunBackground(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	srv := httptest.NewServer(ts.Handler)
	t.Cleanup(srv.Close) // before the background work stops (cleanups run last first)
	ts.URL = srv.URL
	return ts
}

// Do sends a request to the server over HTTP (see kit.Do).
func (ts *TestServer) Do(method, path, bearer string, body any, headers ...string) *kit.Response {
	ts.t.Helper()
	return kit.Do(ts.t, ts.URL, method, path, bearer, body, headers...)
}

// Serve runs a request through the handler in process, the path as sent
// (see kit.Serve).
func (ts *TestServer) Serve(method, path, bearer string, body any, headers ...string) *kit.Response {
	ts.t.Helper()
	return kit.Serve(ts.t, ts.Handler, method, path, bearer, body, headers...)
}

// Workspace inserts an online workspace with a token (see
// kit.InsertWorkspace) and returns its id and token.
func (ts *TestServer) Workspace(ws *store.Workspace) (uuid.UUID, string) {
	ts.t.Helper()
	if ws.Status == "" {
		ws.Status = store.StatusOnline
	}
	tok := kit.InsertWorkspace(ts.t, ts.Store, ws)
	return ws.ID, tok
}
