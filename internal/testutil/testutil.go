// Package testutil gives tests real dependencies: a fresh Postgres database
// per test cloned from a migrated template, and the Redis that `make test`
// started. Without them a test skips locally and fails under CI=true.
package testutil

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"github.com/moleculesai/molecule/internal/store"
	"github.com/moleculesai/molecule/migrations"
)

// Missing skips, or fails when CI=true: in CI every dependency is there,
// so a skip would hide a failure.
func Missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required in CI (run the tests through `make test`)", what)
	}
	t.Skipf("%s not available; run `make test` to start it", what)
}

// AdminDSN is the server-level DSN tests create databases through.
func AdminDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("TEST_DATABASE_URL")
	if dsn == "" {
		dsn = os.Getenv("DATABASE_URL")
	}
	if dsn == "" {
		Missing(t, "Postgres (DATABASE_URL)")
	}
	return dsn
}

// RedisURL returns the test Redis URL.
func RedisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("TEST_REDIS_URL")
	if u == "" {
		u = os.Getenv("REDIS_URL")
	}
	if u == "" {
		Missing(t, "Redis (REDIS_URL)")
	}
	return u
}

// UniquePrefix returns a Redis key/channel prefix no other test shares.
func UniquePrefix() string { return "t" + randHex(6) }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var templateOnce sync.Map // admin DSN → *templateResult

type templateResult struct {
	once sync.Once
	name string
	err  error
}

// migrationsHash names the template after the migrations it holds, so a
// changed migration gets a new template instead of a stale one.
func migrationsHash() string {
	h := sha256.New()
	names, _ := fs.Glob(migrations.FS, "*.sql")
	sort.Strings(names)
	for _, n := range names {
		data, _ := migrations.FS.ReadFile(n)
		h.Write([]byte(n))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func withDB(dsn, db string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	u.Path = "/" + db
	return u.String()
}

// ensureTemplate creates the migrated template database once per server,
// under an advisory lock so parallel test binaries build it once.
func ensureTemplate(admin string) (string, error) {
	v, _ := templateOnce.LoadOrStore(admin, &templateResult{})
	r := v.(*templateResult)
	r.once.Do(func() {
		r.name = "molecule_tpl_" + migrationsHash()
		r.err = buildTemplate(admin, r.name)
	})
	return r.name, r.err
}

func buildTemplate(admin, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db, err := sql.Open("postgres", admin)
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect to test Postgres: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(727274)`); err != nil {
		return err
	}
	defer conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock(727274)`) //nolint:errcheck
	var exists bool
	if err := conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	building := name + "_building"
	_, _ = conn.ExecContext(ctx, `DROP DATABASE IF EXISTS `+building+` WITH (FORCE)`)
	if _, err := conn.ExecContext(ctx, `CREATE DATABASE `+building); err != nil {
		return err
	}
	tdb, err := sql.Open("postgres", withDB(admin, building))
	if err != nil {
		return err
	}
	if err := store.Migrate(tdb); err != nil {
		tdb.Close()
		return err
	}
	tdb.Close()
	_, err = conn.ExecContext(ctx, `ALTER DATABASE `+building+` RENAME TO `+name)
	return err
}

// NewDatabase creates a fresh migrated database for this test and returns
// its DSN; it is dropped when the test ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := AdminDSN(t)
	tpl, err := ensureTemplate(admin)
	if err != nil {
		t.Fatalf("test template database: %v", err)
	}
	name := "molecule_t_" + randHex(8)
	db, err := sql.Open("postgres", admin)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Concurrent clones of one template can collide briefly; retry.
	for attempt := 0; ; attempt++ {
		_, err = db.Exec(`CREATE DATABASE ` + name + ` TEMPLATE ` + tpl)
		if err == nil || attempt == 20 || !strings.Contains(err.Error(), "being accessed by other users") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("postgres", admin)
		if err != nil {
			return
		}
		defer db.Close()
		_, _ = db.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`)
	})
	return withDB(admin, name)
}

// NewStore opens a store on a fresh database.
func NewStore(t testing.TB) *store.Store {
	t.Helper()
	dsn := NewDatabase(t)
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// NeedCommand returns the path of a program a test runs (git,
// redis-server), skipping locally and failing under CI=true without it.
func NeedCommand(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name)
	}
	return path
}
