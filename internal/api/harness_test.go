package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/moleculesai/molecule/internal/api"
	"github.com/moleculesai/molecule/internal/apptest"
	"github.com/moleculesai/molecule/internal/auth"
	"github.com/moleculesai/molecule/internal/config"
	"github.com/moleculesai/molecule/internal/events"
	"github.com/moleculesai/molecule/internal/provisioner"
	"github.com/moleculesai/molecule/internal/runloop"
	"github.com/moleculesai/molecule/internal/secrets"
	"github.com/moleculesai/molecule/internal/store"
	"github.com/moleculesai/molecule/internal/testutil"
)

// fakeLifecycle is a provisioner backend that records what it was asked.
type fakeLifecycle struct {
	provisioner.Unavailable // ConfigFiles: not used here
	mu                      sync.Mutex
	calls                   []string // "provision:<id>", "stop:<id>", "remove:<id>"
	provisionErr            error
}

func (f *fakeLifecycle) Backend() string { return "fake" }
func (f *fakeLifecycle) record(op string, id uuid.UUID) {
	f.mu.Lock()
	f.calls = append(f.calls, op+":"+id.String())
	f.mu.Unlock()
}
func (f *fakeLifecycle) Provision(_ context.Context, id uuid.UUID) error {
	f.record("provision", id)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.provisionErr
}
func (f *fakeLifecycle) Stop(_ context.Context, id uuid.UUID) error {
	f.record("stop", id)
	return nil
}
func (f *fakeLifecycle) Remove(_ context.Context, id uuid.UUID) error {
	f.record("remove", id)
	return nil
}
func (f *fakeLifecycle) IsRunning(context.Context, uuid.UUID) (bool, error) { return true, nil }

func (f *fakeLifecycle) count(op string, id uuid.UUID) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == op+":"+id.String() {
			n++
		}
	}
	return n
}

var _ provisioner.Lifecycle = (*fakeLifecycle)(nil)

// fakeRebuilder records rebuild_config calls.
type fakeRebuilder struct {
	mu  sync.Mutex
	ids []uuid.UUID
	err error
}

func (r *fakeRebuilder) RebuildConfig(_ context.Context, ws *store.Workspace) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, ws.ID)
	return r.err
}

// harness is an API server with injected dependencies (a fake provisioner),
// on a fresh database.
type harness struct {
	t      *testing.T
	URL    string
	Admin  string
	Store  *store.Store
	Hub    *events.Hub
	LC     *fakeLifecycle
	Server *api.Server
}

type harnessOpts struct {
	env       map[string]string
	lifecycle provisioner.Lifecycle
	rebuilder api.ConfigRebuilder
	store     *store.Store // e.g. sqlmock
	lookup    auth.Lookup
}

func newHarness(t *testing.T, o harnessOpts) *harness {
	t.Helper()
	env := map[string]string{"DATABASE_URL": "postgres://unused", "ADMIN_TOKEN": "admin-" + uuid.NewString(),
		"MOLECULE_DATA_DIR": t.TempDir(), "MOLECULE_PROVISIONER": "none"}
	for k, v := range o.env {
		env[k] = v
	}
	cfg, err := config.Load(config.FromMap(env))
	if err != nil {
		t.Fatal(err)
	}
	st := o.store
	if st == nil {
		st = testutil.NewStore(t)
	}
	var lookup auth.Lookup = st
	if o.lookup != nil {
		lookup = o.lookup
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	hub := events.NewHub()
	b := events.NewBroadcaster(st, nil, hub, log)
	go b.Run(ctx)
	key := make([]byte, secrets.KeySize)
	_, _ = rand.Read(key)
	kr, err := secrets.NewKeyring(secrets.Key{ID: secrets.KeyID(key), Secret: key})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, Admin: cfg.AdminToken, Store: st, Hub: hub}
	lc := o.lifecycle
	if lc == nil {
		h.LC = &fakeLifecycle{}
		lc = h.LC
	}
	srv, handler := api.NewServer(api.Deps{Config: cfg, Store: st, Auth: auth.New(cfg.AdminToken, lookup),
		Events: b, Hub: hub, Lifecycle: lc, Keyring: kr, Rebuilder: o.rebuilder, Loops: runloop.NewRunner(log),
		Metrics: prometheus.NewRegistry(), Log: log})
	ts := httptest.NewServer(handler)
	t.Cleanup(ts.Close)
	h.URL, h.Server = ts.URL, srv
	return h
}

func (h *harness) Do(method, path, bearer string, body any, headers ...string) *apptest.Response {
	h.t.Helper()
	return do(h.t, h.URL, method, path, bearer, body, headers...)
}

func do(t testing.TB, base, method, path, bearer string, body any, headers ...string) *apptest.Response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return &apptest.Response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// events returns the stored events of a workspace, oldest first.
func storedEvents(t *testing.T, st *store.Store, id uuid.UUID) []string {
	t.Helper()
	rows, err := st.DB.Query(`SELECT event_type FROM events WHERE workspace_id = $1 ORDER BY id`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// waitFor polls cond (events are recorded after the response in places).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func statusOf(t *testing.T, st *store.Store, id uuid.UUID) string {
	t.Helper()
	var s string
	if err := st.DB.QueryRow(`SELECT status FROM workspaces WHERE id = $1`, id).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

var errBoom = errors.New("boom: pq: relation \"workspaces\" does not exist")

func hashOf(token string) []byte { return auth.Hash(token) }
