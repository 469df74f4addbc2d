// Package store is the Postgres persistence layer: one file per resource,
// ctx-first methods, sentinel errors instead of driver text.
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database/postgres"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/moleculesai/molecule/migrations"
)

// Sentinel errors. The API maps them to statuses in one place; anything
// else from this package is an internal error whose text stays in the logs.
var (
	ErrNotFound = errors.New("not found")
	// ErrUnavailable wraps failures to reach Postgres at all (connection
	// refused, pool closed): the API answers 503 rather than 500.
	ErrUnavailable = errors.New("database unavailable")
)

// Store wraps the pool. It is safe for concurrent use.
type Store struct {
	DB *sql.DB

	stmts stmtCache // prepared hot-path statements (heartbeat)
}

// PoolSize is the number of connections kept open. Idle connections are kept
// up to the same number, so a busy server reuses sessions instead of paying
// for a new Postgres backend per request.
const PoolSize = 32

// Open connects and verifies the connection.
func Open(ctx context.Context, dsn string) (*Store, error) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	db.SetMaxOpenConns(PoolSize)
	db.SetMaxIdleConns(PoolSize)
	db.SetConnMaxIdleTime(10 * time.Minute)
	db.SetConnMaxLifetime(time.Hour)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return &Store{DB: db}, nil
}

// New wraps an existing pool (tests, sqlmock).
func New(db *sql.DB) *Store { return &Store{DB: db} }

// Close closes the pool.
func (s *Store) Close() error { return s.DB.Close() }

// Ping checks that Postgres answers, for readiness.
func (s *Store) Ping(ctx context.Context) error { return s.DB.PingContext(ctx) }

// Migrate applies every embedded migration. golang-migrate holds a Postgres
// advisory lock while it runs, so replicas starting together serialize here.
func Migrate(db *sql.DB) error {
	m, err := newMigrator(db)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

// MigrateDown reverts every migration (used by the up/down/up test).
func MigrateDown(db *sql.DB) error {
	m, err := newMigrator(db)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.Down(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("revert migrations: %w", err)
	}
	return nil
}

func newMigrator(db *sql.DB) (*migrate.Migrate, error) {
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	// One dedicated connection: closing the migrator returns it to the pool
	// (WithInstance would close the whole pool).
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	drv, err := postgres.WithConnection(ctx, conn, &postgres.Config{})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("migration driver: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "postgres", drv)
	if err != nil {
		return nil, fmt.Errorf("migrator: %w", err)
	}
	return m, nil
}

// Tx runs fn in a transaction, committing when fn returns nil. The deferred
// rollback is a no-op after a commit.
func (s *Store) Tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return wrap(err)
	}
	defer tx.Rollback() //nolint:errcheck // rollback after commit is a no-op
	if err := fn(tx); err != nil {
		return err
	}
	return wrap(tx.Commit())
}

// SQLSTATE codes we act on (never match on message text).
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
)

// PQCode returns the SQLSTATE of a Postgres error, or "".
func PQCode(err error) string {
	var pe *pq.Error
	if errors.As(err, &pe) {
		return string(pe.Code)
	}
	return ""
}

// IsUniqueViolation reports a unique-constraint failure.
func IsUniqueViolation(err error) bool { return PQCode(err) == codeUniqueViolation }

// IsForeignKeyViolation reports a foreign-key failure.
func IsForeignKeyViolation(err error) bool { return PQCode(err) == codeForeignKeyViolation }

// wrap marks connection-level failures as ErrUnavailable so callers can tell
// "Postgres is down" (503) from "this query is wrong" (500).
func wrap(err error) error {
	if err == nil || !isConnectionError(err) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

func isConnectionError(err error) bool {
	if code := PQCode(err); code != "" {
		// Class 08 (connection exception), shutdown, too many connections.
		return strings.HasPrefix(code, "08") || code == "57P01" || code == "57P02" || code == "57P03" || code == "53300"
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET)
}

// notFound turns sql.ErrNoRows into ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return wrap(err)
}

// uuidArray passes ids as a Postgres uuid[] parameter.
func uuidArray(ids []uuid.UUID) any { return pq.Array(uuidStrings(ids)) }

func uuidStrings(ids []uuid.UUID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

// queryIDs runs a query whose rows are single ids.
func queryIDs(ctx context.Context, q querier, query string, args ...any) ([]uuid.UUID, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	var out []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			return nil, wrap(err)
		}
		out = append(out, id)
	}
	return out, wrap(rows.Err())
}

// querier is what both *sql.DB and *sql.Tx offer, so row helpers serve both.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

var (
	_ querier = (*sql.DB)(nil)
	_ querier = (*sql.Tx)(nil)
)
