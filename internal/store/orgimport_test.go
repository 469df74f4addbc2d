package store_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/store"
	"github.com/moleculesai/molecule/internal/testutil"
)

func newOrgWS(t *testing.T, st *store.Store, parent *uuid.UUID) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	w := &store.Workspace{ID: uuid.New(), Name: "w", Status: store.StatusOnline, ParentID: parent}
	if err := st.Tx(ctx, func(tx *sql.Tx) error { return store.InsertWorkspaceTx(ctx, tx, w) }); err != nil {
		t.Fatal(err)
	}
	return w.ID
}

func TestDisableSchedulesTx(t *testing.T) {
	st := testutil.NewStore(t)
	ctx := context.Background()
	a, b := newOrgWS(t, st, nil), newOrgWS(t, st, nil)
	next := time.Now().Add(time.Hour)
	for _, ws := range []uuid.UUID{a, a, b} {
		sc := &store.Schedule{ID: uuid.New(), WorkspaceID: ws, Name: uuid.NewString(), CronExpr: "* * * * *",
			Timezone: "UTC", Prompt: "p", Enabled: true, Source: store.ScheduleSourceRuntime, NextRunAt: &next}
		if err := st.Tx(ctx, func(tx *sql.Tx) error { return store.InsertScheduleTx(ctx, tx, sc) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Tx(ctx, func(tx *sql.Tx) error { return store.DisableSchedulesTx(ctx, tx, []uuid.UUID{a}) }); err != nil {
		t.Fatal(err)
	}
	if err := st.Tx(ctx, func(tx *sql.Tx) error { return store.DisableSchedulesTx(ctx, tx, nil) }); err != nil {
		t.Fatal(err)
	}
	for ws, want := range map[uuid.UUID]bool{a: false, b: true} {
		list, err := st.ListSchedules(ctx, ws)
		if err != nil {
			t.Fatal(err)
		}
		for _, sc := range list {
			if sc.Enabled != want || (sc.NextRunAt != nil) != want {
				t.Errorf("workspace %v: schedule enabled=%v next=%v, want enabled=%v", ws, sc.Enabled, sc.NextRunAt, want)
			}
		}
	}
}

func TestSyncTemplateSchedulesKeepsRuntimeRows(t *testing.T) {
	st := testutil.NewStore(t)
	ctx := context.Background()
	ws := newOrgWS(t, st, nil)
	sync := func(scheds ...store.Schedule) {
		t.Helper()
		if err := st.Tx(ctx, func(tx *sql.Tx) error { return store.SyncTemplateSchedulesTx(ctx, tx, ws, scheds) }); err != nil {
			t.Fatal(err)
		}
	}
	rt := &store.Schedule{ID: uuid.New(), WorkspaceID: ws, Name: "daily", CronExpr: "0 9 * * *", Timezone: "UTC",
		Prompt: "mine", Enabled: true, Source: store.ScheduleSourceRuntime}
	if err := st.Tx(ctx, func(tx *sql.Tx) error { return store.InsertScheduleTx(ctx, tx, rt) }); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	sync(store.Schedule{Name: "daily", CronExpr: "0 8 * * *", Timezone: "UTC", Prompt: "v1", Enabled: true, NextRunAt: &t1},
		store.Schedule{Name: "weekly", CronExpr: "0 8 * * 1", Timezone: "UTC", Prompt: "w", Enabled: true, NextRunAt: &t1})
	t2 := t1.Add(time.Hour)
	// Same timing: next_run_at is kept; new prompt; weekly goes away.
	sync(store.Schedule{Name: "daily", CronExpr: "0 8 * * *", Timezone: "UTC", Prompt: "v2", Enabled: false, NextRunAt: &t2})
	list, err := st.ListSchedules(ctx, ws)
	if err != nil || len(list) != 2 {
		t.Fatalf("%d schedules, %v", len(list), err)
	}
	for _, sc := range list {
		switch sc.Source {
		case store.ScheduleSourceRuntime:
			if sc.Prompt != "mine" || sc.CronExpr != "0 9 * * *" || !sc.Enabled {
				t.Errorf("runtime schedule changed: %+v", sc)
			}
		default:
			if sc.Prompt != "v2" || sc.Enabled || sc.NextRunAt == nil || !sc.NextRunAt.Equal(t1) {
				t.Errorf("template schedule: %+v", sc)
			}
		}
	}
}

func TestPluginAllowlistStore(t *testing.T) {
	st := testutil.NewStore(t)
	ctx := context.Background()
	org := newOrgWS(t, st, nil)
	if ok, err := st.PluginAllowed(ctx, org, "x"); err != nil || !ok {
		t.Fatalf("empty list must allow: %v %v", ok, err)
	}
	if _, err := st.ReplacePluginAllowlist(ctx, org, []string{"a", "b"}, "me"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"a": true, "b": true, "x": false} {
		if ok, err := st.PluginAllowed(ctx, org, name); err != nil || ok != want {
			t.Errorf("%s: %v %v", name, ok, err)
		}
	}
	if _, err := st.ReplacePluginAllowlist(ctx, uuid.New(), []string{"a"}, ""); err != store.ErrNotFound {
		t.Errorf("unknown org: %v", err)
	}
}

// Migration 50 goes down and up again cleanly.
func TestOrgImportMigrationDownUp(t *testing.T) {
	st := testutil.NewStore(t)
	if err := store.MigrateDown(st.DB); err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(st.DB); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := st.DB.QueryRow(`SELECT count(*) FROM workspace_plugins`).Scan(&n); err != nil {
		t.Fatal(err)
	}
}
