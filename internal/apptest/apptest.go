// Package apptest boots the whole platform (internal/app) on a random port
// against a fresh database, for end-to-end tests that drive it over HTTP
// like the canvas, an agent or an operator would.
package apptest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/app"
	"github.com/moleculesai/molecule/internal/apptest/kit"
	"github.com/moleculesai/molecule/internal/config"
	"github.com/moleculesai/molecule/internal/store"
	"github.com/moleculesai/molecule/internal/testutil"
)

// Instance is a running platform.
type Instance struct {
	t     testing.TB
	App   *app.App
	URL   string
	Admin string // the admin bearer
	DSN   string

	stop    context.CancelFunc
	done    chan error
	stopped sync.Once
	runErr  error
}

// Options tune Start.
type Options struct {
	// DSN reuses a database (several replicas on one database); empty
	// makes a fresh one.
	DSN string
	// Redis connects the instance to the test Redis with Prefix.
	Redis  bool
	Prefix string
	// Env overrides configuration variables.
	Env map[string]string
	// Log receives the server's log (default: discarded unless -v).
	Log io.Writer
}

// Start boots an instance and stops it when the test ends.
func Start(t testing.TB, opts Options) *Instance {
	t.Helper()
	dsn := opts.DSN
	if dsn == "" {
		dsn = testutil.NewDatabase(t)
	}
	env := map[string]string{
		"DATABASE_URL":         dsn,
		"MOLECULE_LISTEN":      "127.0.0.1:0",
		"MOLECULE_DATA_DIR":    t.TempDir(),
		"ADMIN_TOKEN":          "admin-" + uuid.NewString(),
		"MOLECULE_PROVISIONER": "none",
		"LOG_LEVEL":            "debug",
	}
	if opts.Redis {
		env["REDIS_URL"] = testutil.RedisURL(t)
		env["MOLECULE_REDIS_PREFIX"] = opts.Prefix
		if opts.Prefix == "" {
			env["MOLECULE_REDIS_PREFIX"] = testutil.UniquePrefix()
		}
	}
	for k, v := range opts.Env {
		env[k] = v
	}
	cfg, err := config.Load(config.FromMap(env))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	w := opts.Log
	if w == nil {
		w = io.Discard
		if testing.Verbose() && os.Getenv("MOLECULE_TEST_LOG") != "" {
			w = os.Stderr
		}
	}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("app.New: %v", err)
	}
	ln, err := a.Listen()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	in := &Instance{t: t, App: a, URL: "http://" + ln.Addr().String(), Admin: a.AdminToken(), DSN: dsn,
		stop: cancel, done: make(chan error, 1)}
	go func() { in.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		in.Stop()
		a.Close()
	})
	return in
}

// Stop shuts the server down as SIGTERM would (drain requests and streams,
// stop loops, flush batched writes) and returns what Run returned. It is
// safe to call more than once; the test's cleanup calls it too.
func (in *Instance) Stop() error {
	in.stopped.Do(func() {
		in.stop()
		select {
		case in.runErr = <-in.done:
		case <-time.After(30 * time.Second):
			in.t.Errorf("server did not shut down")
		}
	})
	return in.runErr
}

// Response is a decoded answer (see kit.Response).
type Response = kit.Response

// Do sends a request with an optional bearer (see kit.Do). body may be
// nil, a string or []byte (sent as is), or anything else (sent as JSON).
func (in *Instance) Do(method, path, bearer string, body any, headers ...string) *Response {
	in.t.Helper()
	return kit.Do(in.t, in.URL, method, path, bearer, body, headers...)
}

// CreateWorkspaceRow inserts a workspace directly (bypassing the API) with
// a live token, for tests of other areas. parent may be nil.
func (in *Instance) CreateWorkspaceRow(name string, parent *uuid.UUID) (uuid.UUID, string) {
	in.t.Helper()
	return CreateWorkspace(in.t, in.App.Store, name, parent)
}

// CreateWorkspace inserts an external, online workspace and a token for it.
func CreateWorkspace(t testing.TB, st *store.Store, name string, parent *uuid.UUID) (uuid.UUID, string) {
	t.Helper()
	ws := &store.Workspace{Name: name, Status: store.StatusOnline, ParentID: parent, External: true}
	tok := kit.InsertWorkspace(t, st, ws)
	return ws.ID, tok
}
