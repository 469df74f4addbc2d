package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/api"
	"github.com/moleculesai/molecule/internal/apptest/kit"
	"github.com/moleculesai/molecule/internal/auth"
	"github.com/moleculesai/molecule/internal/store"
)

// createProvisioned creates a non-external workspace through the API and a
// token for it (as the provisioner would hand the agent).
func createProvisioned(t *testing.T, h *api.TestServer, name string, parent *uuid.UUID) (uuid.UUID, string) {
	t.Helper()
	body := map[string]any{"name": name}
	if parent != nil {
		body["parent_id"] = parent.String()
	}
	r := h.Do("POST", "/workspaces", h.Admin, body)
	if r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	var w struct {
		ID     uuid.UUID `json:"id"`
		Status string    `json:"status"`
	}
	r.JSON(t, &w)
	if w.Status != "provisioning" {
		t.Fatalf("status %q", w.Status)
	}
	plain, hash, prefix := auth.NewToken()
	if _, err := h.Store.CreateWorkspaceToken(context.Background(), store.NewTokenRow{ID: uuid.New(), WorkspaceID: w.ID,
		Hash: hash, Prefix: prefix}); err != nil {
		t.Fatal(err)
	}
	return w.ID, plain
}

func TestCreateProvisionsAsync(t *testing.T) {
	h := api.NewTestServer(t, api.TestServerOptions{})
	id, _ := createProvisioned(t, h, "agent", nil)
	if h.LC.Count("provision", id) != 1 {
		t.Fatalf("calls: %v", h.LC.Calls())
	}
	if ev := kit.EventTypes(t, h.Store.DB, id); !slices.Equal(ev, []string{"WORKSPACE_PROVISIONING"}) {
		t.Fatalf("events: %v", ev)
	}

	// A backend that cannot queue the work leaves the workspace failed.
	h.LC.SetProvisionErr(errBoom)
	r := h.Do("POST", "/workspaces", h.Admin, map[string]any{"name": "doomed"})
	wantStatus(t, r, http.StatusCreated)
	var w struct{ ID uuid.UUID }
	r.JSON(t, &w)
	if s := statusOf(t, h.Store, w.ID); s != "failed" {
		t.Fatalf("status %q", s)
	}
	if ev := kit.EventTypes(t, h.Store.DB, w.ID); !slices.Equal(ev, []string{"WORKSPACE_PROVISIONING", "WORKSPACE_PROVISION_FAILED"}) {
		t.Fatalf("events: %v", ev)
	}
}

func TestRestart(t *testing.T) {
	rb := &fakeRebuilder{}
	h := api.NewTestServer(t, api.TestServerOptions{Rebuilder: rb})
	id, tok := createProvisioned(t, h, "agent", nil)
	other, otherTok := createProvisioned(t, h, "other", nil)
	_, _, _ = h.Store.SetWorkspaceStatus(context.Background(), id, store.StatusOnline)

	// A workspace restarts itself with its own token.
	r := h.Do("POST", "/workspaces/"+id.String()+"/restart", tok, nil)
	wantStatus(t, r, http.StatusAccepted)
	if r.Map(t)["status"] != "provisioning" || statusOf(t, h.Store, id) != "provisioning" {
		t.Fatalf("restart: %s", r.Body)
	}
	if h.LC.Count("stop", id) != 1 || h.LC.Count("provision", id) != 2 {
		t.Fatalf("calls: %v", h.LC.Calls())
	}
	wantStatus(t, h.Do("POST", "/workspaces/"+id.String()+"/restart", otherTok, nil), 403)
	r = h.Do("POST", "/workspaces/"+other.String()+"/restart", h.Admin, map[string]any{"rebuild_config": true})
	wantStatus(t, r, http.StatusAccepted)
	if len(rb.ids) != 1 || rb.ids[0] != other {
		t.Fatalf("rebuild not called: %v", rb.ids)
	}
	rb.err = store.ErrNotFound
	wantStatus(t, h.Do("POST", "/workspaces/"+other.String()+"/restart", h.Admin, `{"rebuild_config":true}`), 404)
	for _, body := range []string{`{`, `{"rebuild_config":"yes"}`, `[]`} {
		wantStatus(t, h.Do("POST", "/workspaces/"+id.String()+"/restart", h.Admin, body), 400)
	}
	wantStatus(t, h.Do("POST", "/workspaces/"+uuid.NewString()+"/restart", h.Admin, nil), 404)
	wantStatus(t, h.Do("POST", "/workspaces/xyz/restart", h.Admin, nil), 400)

	// External workspaces are restarted where they run.
	r = h.Do("POST", "/workspaces", h.Admin, map[string]any{"name": "ext", "external": true})
	var ext struct{ ID uuid.UUID }
	r.JSON(t, &ext)
	wantStatus(t, h.Do("POST", "/workspaces/"+ext.ID.String()+"/restart", h.Admin, nil), 400)
}

func TestRebuildWithoutRebuilder(t *testing.T) {
	h := api.NewTestServer(t, api.TestServerOptions{})
	id, _ := createProvisioned(t, h, "agent", nil)
	wantStatus(t, h.Do("POST", "/workspaces/"+id.String()+"/restart", h.Admin, map[string]any{"rebuild_config": true}), 503)
}

func TestPauseResumeTree(t *testing.T) {
	h := api.NewTestServer(t, api.TestServerOptions{})
	root, rootTok := createProvisioned(t, h, "root", nil)
	child, _ := createProvisioned(t, h, "child", &root)
	r := h.Do("POST", "/workspaces", h.Admin, map[string]any{"name": "ext", "external": true, "parent_id": child.String()})
	var ext struct{ ID uuid.UUID }
	r.JSON(t, &ext)
	sibling, _ := createProvisioned(t, h, "sibling", nil)

	r = h.Do("POST", "/workspaces/"+root.String()+"/pause", rootTok, nil)
	wantStatus(t, r, 200)
	if m := r.Map(t); m["paused"] != float64(3) {
		t.Fatalf("pause: %s", r.Body)
	}
	for _, id := range []uuid.UUID{root, child, ext.ID} {
		if s := statusOf(t, h.Store, id); s != "paused" {
			t.Fatalf("%s is %s", id, s)
		}
		if ev := kit.EventTypes(t, h.Store.DB, id); ev[len(ev)-1] != "WORKSPACE_PAUSED" {
			t.Fatalf("events %v", ev)
		}
	}
	if statusOf(t, h.Store, sibling) == "paused" {
		t.Fatal("sibling paused")
	}
	if h.LC.Count("stop", root) != 1 || h.LC.Count("stop", child) != 1 || h.LC.Count("stop", ext.ID) != 0 {
		t.Fatalf("stops: %v", h.LC.Calls())
	}
	// Idempotent.
	r = h.Do("POST", "/workspaces/"+root.String()+"/pause", h.Admin, nil)
	if r.Map(t)["paused"] != float64(0) {
		t.Fatalf("second pause: %s", r.Body)
	}
	wantStatus(t, h.Do("POST", "/workspaces/"+sibling.String()+"/resume", h.Admin, nil), 409)

	r = h.Do("POST", "/workspaces/"+root.String()+"/resume", h.Admin, nil)
	wantStatus(t, r, http.StatusAccepted)
	if m := r.Map(t); m["status"] != "provisioning" || m["resumed"] != float64(3) {
		t.Fatalf("resume: %s", r.Body)
	}
	if statusOf(t, h.Store, child) != "provisioning" || statusOf(t, h.Store, ext.ID) != "awaiting_agent" {
		t.Fatal("resume statuses")
	}
	if h.LC.Count("provision", child) != 2 || h.LC.Count("provision", ext.ID) != 0 {
		t.Fatalf("provisions: %v", h.LC.Calls())
	}
}

func TestDeleteStopsContainers(t *testing.T) {
	h := api.NewTestServer(t, api.TestServerOptions{})
	root, _ := createProvisioned(t, h, "root", nil)
	child, _ := createProvisioned(t, h, "child", &root)
	wantStatus(t, h.Do("DELETE", "/workspaces/"+root.String()+"?confirm=true", h.Admin, nil), 200)
	if h.LC.Count("remove", root) != 1 || h.LC.Count("remove", child) != 1 {
		t.Fatalf("removes: %v", h.LC.Calls())
	}
}

// Without a backend, lifecycle routes of provisioned workspaces are 503.
func TestLifecycleNoBackend(t *testing.T) {
	in := startWS(t)
	id, tok := in.CreateWorkspaceRow("row", nil)
	if _, err := in.App.Store.DB.Exec(`UPDATE workspaces SET external = false WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"restart", "pause", "resume"} {
		r := in.Do("POST", "/workspaces/"+id.String()+"/"+op, tok, nil)
		if op == "resume" {
			wantStatus(t, r, 409) // not paused: checked first
			continue
		}
		wantStatus(t, r, 503)
		if !strings.Contains(string(r.Body), "MOLECULE_PROVISIONER") {
			t.Fatalf("%s: %s", op, r.Body)
		}
	}
	_, _ = in.App.Store.DB.Exec(`UPDATE workspaces SET status = 'paused' WHERE id = $1`, id)
	wantStatus(t, in.Do("POST", "/workspaces/"+id.String()+"/resume", tok, nil), 503)
}

func TestSweeps(t *testing.T) {
	h := api.NewTestServer(t, api.TestServerOptions{Env: map[string]string{"MOLECULE_LIVENESS_TTL": "1s", "MOLECULE_PROVISION_TIMEOUT": "1s"}})
	prov, provTok := createProvisioned(t, h, "prov", nil)
	r := h.Do("POST", "/workspaces", h.Admin, map[string]any{"name": "ext", "external": true})
	var ext struct {
		ID         uuid.UUID
		Connection struct {
			AuthToken string `json:"auth_token"`
		}
	}
	r.JSON(t, &ext)
	urlOnly := h.Do("POST", "/workspaces", h.Admin, map[string]any{"name": "url-only", "external": true, "url": "http://10.0.0.9:8000"})
	var uo struct{ ID uuid.UUID }
	urlOnly.JSON(t, &uo)
	stuck, _ := createProvisioned(t, h, "stuck", nil)

	for _, w := range []struct {
		id  uuid.UUID
		tok string
	}{{prov, provTok}, {ext.ID, ext.Connection.AuthToken}} {
		wantStatus(t, h.Do("POST", "/registry/heartbeat", w.tok, map[string]any{"workspace_id": w.id.String()}), 200)
	}
	time.Sleep(1200 * time.Millisecond)
	ctx := context.Background()
	if err := h.Server.SweepOffline(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Server.SweepProvisionTimeouts(ctx); err != nil {
		t.Fatal(err)
	}
	if s := statusOf(t, h.Store, ext.ID); s != "offline" {
		t.Fatalf("external: %s", s)
	}
	if s := statusOf(t, h.Store, uo.ID); s != "online" {
		t.Fatalf("url-only external never beats and stays online: %s", s)
	}
	// The provisioned one went offline, then was restarted.
	if s := statusOf(t, h.Store, prov); s != "provisioning" || h.LC.Count("provision", prov) != 2 {
		t.Fatalf("prov: %s %v", s, h.LC.Calls())
	}
	if ev := kit.EventTypes(t, h.Store.DB, prov); !slices.Equal(ev[len(ev)-3:], []string{"WORKSPACE_ONLINE", "WORKSPACE_OFFLINE", "WORKSPACE_PROVISIONING"}) {
		t.Fatalf("prov events: %v", ev)
	}
	if s := statusOf(t, h.Store, stuck); s != "failed" {
		t.Fatalf("stuck: %s", s)
	}
	ev := kit.EventTypes(t, h.Store.DB, stuck)
	if ev[len(ev)-1] != "WORKSPACE_PROVISION_FAILED" {
		t.Fatalf("stuck events: %v", ev)
	}
	var payload []byte
	_ = h.Store.DB.QueryRow(`SELECT payload FROM events WHERE workspace_id = $1 ORDER BY id DESC LIMIT 1`, stuck).Scan(&payload)
	var m map[string]any
	_ = json.Unmarshal(payload, &m)
	if m["status"] != "failed" || m["previous_status"] != "provisioning" {
		t.Fatalf("payload %s", payload)
	}
}
