package api

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/moleculesai/molecule/internal/auth"
	"github.com/moleculesai/molecule/internal/config"
	"github.com/moleculesai/molecule/internal/events"
	"github.com/moleculesai/molecule/internal/provisioner"
	"github.com/moleculesai/molecule/internal/runloop"
	"github.com/moleculesai/molecule/internal/secrets"
	"github.com/moleculesai/molecule/internal/store"
	"github.com/moleculesai/molecule/internal/testutil"
)

// fakeLifecycle records every call. With noBackend it behaves like a
// server without a provisioner (every call ErrNoBackend) but still records.
type fakeLifecycle struct {
	mu         sync.Mutex
	noBackend  bool
	writes     map[uuid.UUID]map[string][]byte
	writeCalls int
	deletes    []string
	provisions []uuid.UUID
}

var _ provisioner.Lifecycle = (*fakeLifecycle)(nil)

func newFakeLifecycle() *fakeLifecycle {
	return &fakeLifecycle{writes: map[uuid.UUID]map[string][]byte{}}
}

func (f *fakeLifecycle) Backend() string { return "fake" }

func (f *fakeLifecycle) Provision(_ context.Context, id uuid.UUID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.provisions = append(f.provisions, id)
	if f.noBackend {
		return provisioner.ErrNoBackend
	}
	return nil
}

func (f *fakeLifecycle) Stop(context.Context, uuid.UUID) error   { return nil }
func (f *fakeLifecycle) Remove(context.Context, uuid.UUID) error { return nil }
func (f *fakeLifecycle) IsRunning(context.Context, uuid.UUID) (bool, error) {
	return true, nil
}

func (f *fakeLifecycle) ListFiles(context.Context, uuid.UUID, string, int) ([]provisioner.FileInfo, error) {
	return nil, nil
}

func (f *fakeLifecycle) ReadFile(_ context.Context, id uuid.UUID, p string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if data, ok := f.writes[id][p]; ok {
		return data, nil
	}
	return nil, provisioner.ErrNotFound
}

func (f *fakeLifecycle) WriteFiles(_ context.Context, id uuid.UUID, files map[string][]byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writeCalls++
	if f.noBackend {
		return provisioner.ErrNoBackend
	}
	if f.writes[id] == nil {
		f.writes[id] = map[string][]byte{}
	}
	for p, d := range files {
		f.writes[id][p] = append([]byte(nil), d...)
	}
	return nil
}

func (f *fakeLifecycle) DeletePath(_ context.Context, id uuid.UUID, p string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletes = append(f.deletes, id.String()+":"+p)
	if f.noBackend {
		return provisioner.ErrNoBackend
	}
	found := false
	for k := range f.writes[id] {
		if k == p || strings.HasPrefix(k, p+"/") {
			delete(f.writes[id], k)
			found = true
		}
	}
	if !found {
		return provisioner.ErrNotFound
	}
	return nil
}

// files returns the paths written for a workspace, sorted.
func (f *fakeLifecycle) files(id uuid.UUID) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for p := range f.writes[id] {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func (f *fakeLifecycle) calls() (writes int, provisions int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writeCalls, len(f.provisions)
}

// orgEnv is a Server on a fresh database with a recording lifecycle.
type orgEnv struct {
	t       testing.TB
	srv     *Server
	h       http.Handler
	st      *store.Store
	fake    *fakeLifecycle
	keyring *secrets.Keyring
	admin   string
}

func newOrgEnv(t testing.TB, env map[string]string, fake *fakeLifecycle) *orgEnv {
	t.Helper()
	st := testutil.NewStore(t)
	m := map[string]string{"DATABASE_URL": "postgres://unused/db"}
	for k, v := range env {
		m[k] = v
	}
	cfg, err := config.Load(config.FromMap(m))
	if err != nil {
		t.Fatal(err)
	}
	kr, err := secrets.NewKeyring(secrets.Key{ID: "test", Secret: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	hub := events.NewHub()
	bc := events.NewBroadcaster(st, nil, hub, log)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go bc.Run(ctx)
	admin := "admin-" + uuid.NewString()
	srv, h := NewServer(Deps{
		Config: cfg, Store: st, Auth: auth.New(admin, st), Events: bc, Hub: hub, Lifecycle: fake,
		Keyring: kr, Loops: runloop.NewRunner(log), Metrics: prometheus.NewRegistry(), Log: log,
	})
	return &orgEnv{t: t, srv: srv, h: h, st: st, fake: fake, keyring: kr, admin: admin}
}

type resp struct {
	Status int
	Body   []byte
}

func (r resp) m(t *testing.T) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal(r.Body, &out); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
	return out
}

func (r resp) errMsg(t *testing.T) string {
	t.Helper()
	msg, _ := r.m(t)["error"].(string)
	return msg
}

func (e *orgEnv) do(method, path, bearer string, body any) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req := httptest.NewRequest(method, path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	return resp{Status: w.Code, Body: w.Body.Bytes()}
}

func (e *orgEnv) count(table string, where ...string) int {
	e.t.Helper()
	q := `SELECT count(*) FROM ` + table
	if len(where) > 0 {
		q += " WHERE " + where[0]
	}
	var n int
	if err := e.st.DB.QueryRow(q).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// workspace inserts a container (non-external) workspace with a token.
func (e *orgEnv) workspace(name string, parent *uuid.UUID) (uuid.UUID, string) {
	e.t.Helper()
	ctx := context.Background()
	ws := &store.Workspace{ID: uuid.New(), Name: name, Status: store.StatusOnline, ParentID: parent}
	plain, hash, prefix := auth.NewToken()
	err := e.st.Tx(ctx, func(tx *sql.Tx) error {
		if err := store.InsertWorkspaceTx(ctx, tx, ws); err != nil {
			return err
		}
		return store.InsertWorkspaceTokenTx(ctx, tx, store.NewTokenRow{ID: uuid.New(), WorkspaceID: ws.ID, Hash: hash, Prefix: prefix})
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return ws.ID, plain
}

// eventually polls cond (background work) for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
