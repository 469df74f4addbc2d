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

	"github.com/moleculesai/molecule/internal/auth"
	"github.com/moleculesai/molecule/internal/store"
)

// createProvisioned creates a non-external workspace through the API and a
// token for it (as the provisioner would hand the agent).
func (h *harness) createProvisioned(name string, parent *uuid.UUID) (uuid.UUID, string) {
	h.t.Helper()
	body := map[string]any{"name": name}
	if parent != nil {
		body["parent_id"] = parent.String()
	}
	r := h.Do("POST", "/workspaces", h.Admin, body)
	if r.Status != http.StatusCreated {
		h.t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	var w struct {
		ID     uuid.UUID `json:"id"`
		Status string    `json:"status"`
	}
	r.JSON(h.t, &w)
	if w.Status != "provisioning" {
		h.t.Fatalf("status %q", w.Status)
	}
	plain, hash, prefix := auth.NewToken()
	if _, err := h.Store.CreateWorkspaceToken(context.Background(), store.NewTokenRow{ID: uuid.New(), WorkspaceID: w.ID,
		Hash: hash, Prefix: prefix}); err != nil {
		h.t.Fatal(err)
	}
	return w.ID, plain
}

func TestCreateProvisionsAsync(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	id, _ := h.createProvisioned("agent", nil)
	if h.LC.count("provision", id) != 1 {
		t.Fatalf("calls: %v", h.LC.calls)
	}
	if ev := storedEvents(t, h.Store, id); !slices.Equal(ev, []string{"WORKSPACE_PROVISIONING"}) {
		t.Fatalf("events: %v", ev)
	}

	// A backend that cannot queue the work leaves the workspace failed.
	h.LC.provisionErr = errBoom
	r := h.Do("POST", "/workspaces", h.Admin, map[string]any{"name": "doomed"})
	wantStatus(t, r, http.StatusCreated)
	var w struct{ ID uuid.UUID }
	r.JSON(t, &w)
	if s := statusOf(t, h.Store, w.ID); s != "failed" {
		t.Fatalf("status %q", s)
	}
	if ev := storedEvents(t, h.Store, w.ID); !slices.Equal(ev, []string{"WORKSPACE_PROVISIONING", "WORKSPACE_PROVISION_FAILED"}) {
		t.Fatalf("events: %v", ev)
	}
}

func TestRestart(t *testing.T) {
	rb := &fakeRebuilder{}
	h := newHarness(t, harnessOpts{rebuilder: rb})
	id, tok := h.createProvisioned("agent", nil)
	other, otherTok := h.createProvisioned("other", nil)
	_, _, _ = h.Store.SetWorkspaceStatus(context.Background(), id, store.StatusOnline)

	// A workspace restarts itself with its own token.
	r := h.Do("POST", "/workspaces/"+id.String()+"/restart", tok, nil)
	wantStatus(t, r, http.StatusAccepted)
	if r.Map(t)["status"] != "provisioning" || statusOf(t, h.Store, id) != "provisioning" {
		t.Fatalf("restart: %s", r.Body)
	}
	if h.LC.count("stop", id) != 1 || h.LC.count("provision", id) != 2 {
		t.Fatalf("calls: %v", h.LC.calls)
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
	h := newHarness(t, harnessOpts{})
	id, _ := h.createProvisioned("agent", nil)
	wantStatus(t, h.Do("POST", "/workspaces/"+id.String()+"/restart", h.Admin, map[string]any{"rebuild_config": true}), 503)
}

func TestPauseResumeTree(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	root, rootTok := h.createProvisioned("root", nil)
	child, _ := h.createProvisioned("child", &root)
	r := h.Do("POST", "/workspaces", h.Admin, map[string]any{"name": "ext", "external": true, "parent_id": child.String()})
	var ext struct{ ID uuid.UUID }
	r.JSON(t, &ext)
	sibling, _ := h.createProvisioned("sibling", nil)

	r = h.Do("POST", "/workspaces/"+root.String()+"/pause", rootTok, nil)
	wantStatus(t, r, 200)
	if m := r.Map(t); m["paused"] != float64(3) {
		t.Fatalf("pause: %s", r.Body)
	}
	for _, id := range []uuid.UUID{root, child, ext.ID} {
		if s := statusOf(t, h.Store, id); s != "paused" {
			t.Fatalf("%s is %s", id, s)
		}
		if ev := storedEvents(t, h.Store, id); ev[len(ev)-1] != "WORKSPACE_PAUSED" {
			t.Fatalf("events %v", ev)
		}
	}
	if statusOf(t, h.Store, sibling) == "paused" {
		t.Fatal("sibling paused")
	}
	if h.LC.count("stop", root) != 1 || h.LC.count("stop", child) != 1 || h.LC.count("stop", ext.ID) != 0 {
		t.Fatalf("stops: %v", h.LC.calls)
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
	if h.LC.count("provision", child) != 2 || h.LC.count("provision", ext.ID) != 0 {
		t.Fatalf("provisions: %v", h.LC.calls)
	}
}

func TestDeleteStopsContainers(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	root, _ := h.createProvisioned("root", nil)
	child, _ := h.createProvisioned("child", &root)
	wantStatus(t, h.Do("DELETE", "/workspaces/"+root.String()+"?confirm=true", h.Admin, nil), 200)
	if h.LC.count("remove", root) != 1 || h.LC.count("remove", child) != 1 {
		t.Fatalf("removes: %v", h.LC.calls)
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
	h := newHarness(t, harnessOpts{env: map[string]string{"MOLECULE_LIVENESS_TTL": "1s", "MOLECULE_PROVISION_TIMEOUT": "1s"}})
	prov, provTok := h.createProvisioned("prov", nil)
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
	stuck, _ := h.createProvisioned("stuck", nil)

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
	if s := statusOf(t, h.Store, prov); s != "provisioning" || h.LC.count("provision", prov) != 2 {
		t.Fatalf("prov: %s %v", s, h.LC.calls)
	}
	if ev := storedEvents(t, h.Store, prov); !slices.Equal(ev[len(ev)-3:], []string{"WORKSPACE_ONLINE", "WORKSPACE_OFFLINE", "WORKSPACE_PROVISIONING"}) {
		t.Fatalf("prov events: %v", ev)
	}
	if s := statusOf(t, h.Store, stuck); s != "failed" {
		t.Fatalf("stuck: %s", s)
	}
	ev := storedEvents(t, h.Store, stuck)
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
