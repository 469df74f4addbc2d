package api_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/apptest"
	"github.com/moleculesai/molecule/internal/apptest/kit"
)

// Two server replicas on one database sweep concurrently; each stale
// workspace goes offline once (one WORKSPACE_OFFLINE), each stuck one
// fails once (one WORKSPACE_PROVISION_FAILED).
func TestLivenessSweepTwoReplicas(t *testing.T) {
	env := map[string]string{"MOLECULE_LIVENESS_TTL": "1s", "MOLECULE_PROVISION_TIMEOUT": "1s", "MOLECULE_SWEEP_INTERVAL": "50ms"}
	first := apptest.Start(t, apptest.Options{Env: env})
	second := apptest.Start(t, apptest.Options{DSN: first.DSN, Env: env})

	const n = 40
	var stale, stuck []uuid.UUID
	for i := 0; i < n; i++ {
		id, tok := first.CreateWorkspaceRow("agent", nil)
		// Half beat through one replica, half through the other.
		in := first
		if i%2 == 1 {
			in = second
		}
		wantStatus(t, in.Do("POST", "/registry/heartbeat", tok, map[string]any{"workspace_id": id.String()}), 200)
		stale = append(stale, id)

		sid, _ := first.CreateWorkspaceRow("stuck", nil)
		if _, err := first.App.Store.DB.Exec(`UPDATE workspaces SET status = 'provisioning', external = false,
			status_changed_at = now() WHERE id = $1`, sid); err != nil {
			t.Fatal(err)
		}
		stuck = append(stuck, sid)
	}
	count := func(typ string) int {
		return kit.Count(t, first.App.Store.DB, "events", "event_type = $1", typ)
	}
	kit.EventuallyWithin(t, 15*time.Second, "all swept", func() bool { return count("WORKSPACE_OFFLINE") >= n && count("WORKSPACE_PROVISION_FAILED") >= n })
	time.Sleep(300 * time.Millisecond) // a few more sweeps on both replicas
	for typ, ids := range map[string][]uuid.UUID{"WORKSPACE_OFFLINE": stale, "WORKSPACE_PROVISION_FAILED": stuck} {
		for _, id := range ids {
			if c := kit.Count(t, first.App.Store.DB, "events", "event_type = $1 AND workspace_id = $2", typ, id); c != 1 {
				t.Fatalf("%s has %d %s events", id, c, typ)
			}
		}
	}
	// Both replicas were sweeping.
	for _, in := range []*apptest.Instance{first, second} {
		r := in.Do("GET", "/admin/liveness", in.Admin, nil)
		var live struct {
			Loops []struct {
				Name  string `json:"name"`
				Ticks int    `json:"ticks"`
			} `json:"loops"`
		}
		r.JSON(t, &live)
		ticks := 0
		for _, l := range live.Loops {
			if l.Name == "liveness-offline" {
				ticks = l.Ticks
			}
		}
		if ticks < 5 {
			t.Fatalf("replica swept %d times: %s", ticks, r.Body)
		}
	}
	// The claimed rows really are offline.
	if statusOf(t, first.App.Store, stale[0]) != "offline" {
		t.Fatal("not offline")
	}
}

func waitForLong(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
