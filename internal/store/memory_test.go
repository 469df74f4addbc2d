package store_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/store"
	"github.com/moleculesai/molecule/internal/testutil"
)

func newMemoryWorkspace(t testing.TB, st *store.Store, parent *uuid.UUID) uuid.UUID {
	t.Helper()
	w := &store.Workspace{ID: uuid.New(), Name: "ws", Status: store.StatusOnline, ParentID: parent}
	err := st.Tx(context.Background(), func(tx *sql.Tx) error { return store.InsertWorkspaceTx(context.Background(), tx, w) })
	if err != nil {
		t.Fatal(err)
	}
	return w.ID
}

func ptr(v int64) *int64 { return &v }

func wantConflict(t *testing.T, err error, expected, current int64) {
	t.Helper()
	var vc *store.VersionConflict
	if !errors.As(err, &vc) {
		t.Fatalf("want VersionConflict, got %v", err)
	}
	if vc.Expected != expected || vc.Current != current {
		t.Fatalf("conflict = %+v, want expected %d current %d", vc, expected, current)
	}
}

func TestMemoryVersions(t *testing.T) {
	st := testutil.NewStore(t)
	ctx := context.Background()
	ws := newMemoryWorkspace(t, st, nil)
	other := newMemoryWorkspace(t, st, nil)

	steps := []struct {
		name    string
		ifMatch *int64
		want    int64 // 0: conflict
		cur     int64
	}{
		{"create only, absent", ptr(0), 1, 0},
		{"create only, present", ptr(0), 0, 1},
		{"upsert", nil, 2, 0},
		{"matching version", ptr(2), 3, 0},
		{"stale version", ptr(2), 0, 3},
		{"future version", ptr(9), 0, 3},
	}
	for _, s := range steps {
		v, err := st.SetMemory(ctx, ws, "k", []byte(`{"n":1}`), 0, s.ifMatch)
		if s.want == 0 {
			wantConflict(t, err, *s.ifMatch, s.cur)
			continue
		}
		if err != nil || v != s.want {
			t.Fatalf("%s: version %d err %v, want %d", s.name, v, err, s.want)
		}
	}
	// Isolation: the same key in another workspace is another entry.
	if _, err := st.GetMemory(ctx, other, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other workspace sees the key: %v", err)
	}
	_, err := st.SetMemory(ctx, other, "k", []byte(`"x"`), 0, ptr(3))
	wantConflict(t, err, 3, 0)
	if v, err := st.SetMemory(ctx, other, "k", []byte(`"x"`), 0, nil); err != nil || v != 1 {
		t.Fatalf("other workspace: %d %v", v, err)
	}
	e, err := st.GetMemory(ctx, ws, "k")
	if err != nil || e.Version != 3 || string(e.Value) != `{"n": 1}` {
		t.Fatalf("get = %+v %v", e, err)
	}
	// Unknown workspace: not found, never a driver error.
	if _, err := st.SetMemory(ctx, uuid.New(), "k", []byte(`1`), 0, nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown workspace: %v", err)
	}
	if err := st.DeleteMemory(ctx, ws, "k"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteMemory(ctx, ws, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestMemoryTTL(t *testing.T) {
	st := testutil.NewStore(t)
	ctx := context.Background()
	ws := newMemoryWorkspace(t, st, nil)
	if _, err := st.SetMemory(ctx, ws, "tmp", []byte(`1`), time.Hour, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetMemory(ctx, ws, "keep", []byte(`2`), 0, nil); err != nil {
		t.Fatal(err)
	}
	e, err := st.GetMemory(ctx, ws, "tmp")
	if err != nil || e.ExpiresAt == nil || time.Until(*e.ExpiresAt) < 59*time.Minute {
		t.Fatalf("ttl entry = %+v %v", e, err)
	}
	// Expire it without sleeping.
	if _, err := st.DB.Exec(`UPDATE workspace_memory SET expires_at = now() - interval '1 second' WHERE key = 'tmp'`); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetMemory(ctx, ws, "tmp"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired entry visible: %v", err)
	}
	list, err := st.ListMemory(ctx, ws, 100, 0)
	if err != nil || len(list) != 1 || list[0].Key != "keep" {
		t.Fatalf("list = %+v %v", list, err)
	}
	_, err = st.SetMemory(ctx, ws, "tmp", []byte(`3`), 0, ptr(1))
	wantConflict(t, err, 1, 0) // expired is absent
	if err := st.DeleteMemory(ctx, ws, "tmp"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete expired: %v", err)
	}
	// Create-only resurrects an expired key at version 1.
	if v, err := st.SetMemory(ctx, ws, "tmp", []byte(`4`), 0, ptr(0)); err != nil || v != 1 {
		t.Fatalf("create over expired: %d %v", v, err)
	}
	if _, err := st.DB.Exec(`UPDATE workspace_memory SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	n, err := st.PruneExpiredMemory(ctx, 1000)
	if err != nil || n != 2 {
		t.Fatalf("pruned %d %v, want 2", n, err)
	}
	var left int
	if err := st.DB.QueryRow(`SELECT count(*) FROM workspace_memory`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("rows left %d %v", left, err)
	}
}

// N writers holding the same version: exactly one wins (§9).
func TestMemoryConcurrentSameVersion(t *testing.T) {
	st := testutil.NewStore(t)
	ctx := context.Background()
	ws := newMemoryWorkspace(t, st, nil)
	if _, err := st.SetMemory(ctx, ws, "k", []byte(`0`), 0, nil); err != nil {
		t.Fatal(err)
	}
	const writers = 20
	var wg sync.WaitGroup
	start := make(chan struct{})
	results := make(chan error, writers)
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			_, err := st.SetMemory(ctx, ws, "k", []byte(strconv.Itoa(i)), 0, ptr(1))
			results <- err
		}(i)
	}
	close(start)
	wg.Wait()
	close(results)
	wins := 0
	for err := range results {
		var vc *store.VersionConflict
		switch {
		case err == nil:
			wins++
		case errors.As(err, &vc):
			if vc.Current != 2 {
				t.Errorf("loser saw current %d, want 2", vc.Current)
			}
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d writers won, want exactly 1", wins)
	}
	e, _ := st.GetMemory(ctx, ws, "k")
	if e.Version != 2 {
		t.Fatalf("version %d, want 2", e.Version)
	}
}

// Read-modify-write with retry on conflict never loses an update.
func TestMemoryConcurrentIncrements(t *testing.T) {
	st := testutil.NewStore(t)
	ctx := context.Background()
	ws := newMemoryWorkspace(t, st, nil)
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				for attempt := 0; ; attempt++ {
					if attempt > 1000 {
						errc <- errors.New("no progress after 1000 attempts")
						return
					}
					var n int
					var ver int64
					e, err := st.GetMemory(ctx, ws, "counter")
					switch {
					case errors.Is(err, store.ErrNotFound):
					case err != nil:
						errc <- err
						return
					default:
						if err := json.Unmarshal(e.Value, &n); err != nil {
							errc <- err
							return
						}
						ver = e.Version
					}
					_, err = st.SetMemory(ctx, ws, "counter", []byte(strconv.Itoa(n+1)), 0, &ver)
					var vc *store.VersionConflict
					if errors.As(err, &vc) {
						continue
					}
					if err != nil {
						errc <- err
						return
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	e, err := st.GetMemory(ctx, ws, "counter")
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Value) != strconv.Itoa(workers*each) || e.Version != workers*each {
		t.Fatalf("counter = %s at version %d, want %d at version %d", e.Value, e.Version, workers*each, workers*each)
	}
}
