package store_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/moleculesai/molecule/internal/store"
	"github.com/moleculesai/molecule/internal/testutil"
)

func tables(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM information_schema.tables
		WHERE table_schema = 'public' AND table_name <> 'schema_migrations'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Every migration goes up, all the way down, and up again on a real
// Postgres; down leaves no table behind.
func TestMigrationsUpDownUp(t *testing.T) {
	st := testutil.NewStore(t) // already migrated up from the template
	up := tables(t, st.DB)
	if up == 0 {
		t.Fatal("no tables after migrating up")
	}
	if err := store.MigrateDown(st.DB); err != nil {
		t.Fatalf("down: %v", err)
	}
	if n := tables(t, st.DB); n != 0 {
		t.Fatalf("%d tables left after migrating down", n)
	}
	if err := store.Migrate(st.DB); err != nil {
		t.Fatalf("up again: %v", err)
	}
	if n := tables(t, st.DB); n != up {
		t.Fatalf("up again made %d tables, want %d", n, up)
	}
	// Applying again is a no-op, and the pool is still usable afterwards.
	if err := store.Migrate(st.DB); err != nil {
		t.Fatal(err)
	}
	if err := st.Ping(context.Background()); err != nil {
		t.Fatalf("pool closed by the migrator: %v", err)
	}
}

// Several replicas starting at once serialise on golang-migrate's lock.
func TestConcurrentMigrate(t *testing.T) {
	dsn := testutil.NewDatabase(t)
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := store.MigrateDown(st.DB); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := store.Open(context.Background(), dsn)
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			errs <- store.Migrate(s.DB)
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent migrate: %v", err)
		}
	}
	if tables(t, st.DB) == 0 {
		t.Fatal("no tables after concurrent migrations")
	}
}
