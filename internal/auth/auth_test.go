package auth_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/auth"
	"github.com/moleculesai/molecule/internal/store"
	"github.com/moleculesai/molecule/internal/testutil"
)

// countingLookup wraps the store and counts database lookups.
type countingLookup struct {
	*store.Store
	lookups int
	fail    error
}

func (c *countingLookup) LookupToken(ctx context.Context, h []byte) (store.TokenRecord, error) {
	c.lookups++
	if c.fail != nil {
		return store.TokenRecord{}, c.fail
	}
	return c.Store.LookupToken(ctx, h)
}

func newWorkspaceToken(t testing.TB, st *store.Store) (uuid.UUID, uuid.UUID, string) {
	t.Helper()
	ctx := context.Background()
	ws := &store.Workspace{ID: uuid.New(), Name: "w", Status: store.StatusOnline}
	plain, hash, prefix := auth.NewToken()
	tokID := uuid.New()
	err := st.Tx(ctx, func(tx *sql.Tx) error {
		if err := store.InsertWorkspaceTx(ctx, tx, ws); err != nil {
			return err
		}
		return store.InsertWorkspaceTokenTx(ctx, tx, store.NewTokenRow{ID: tokID, WorkspaceID: ws.ID, Hash: hash, Prefix: prefix})
	})
	if err != nil {
		t.Fatal(err)
	}
	return ws.ID, tokID, plain
}

func TestNewTokenShape(t *testing.T) {
	plain, hash, prefix := auth.NewToken()
	if len(plain) != 43 || len(hash) != 32 || prefix != plain[:8] {
		t.Fatalf("token %d chars, hash %d bytes, prefix %q", len(plain), len(hash), prefix)
	}
	other, _, _ := auth.NewToken()
	if other == plain {
		t.Fatal("two tokens are equal")
	}
}

// Authenticating does not write: uses are batched in memory and written in
// one statement by FlushLastUsed. Lookups are cached, so repeated requests
// do not query Postgres either.
func TestLastUsedBatchedAndLookupsCached(t *testing.T) {
	st := testutil.NewStore(t)
	ctx := context.Background()
	wsID, tokID, plain := newWorkspaceToken(t, st)
	lk := &countingLookup{Store: st}
	a := auth.New("the-admin-token-0123456789", lk)

	for range 50 {
		p, ok, err := a.Bearer(ctx, plain)
		if err != nil || !ok || p.Kind != auth.Workspace || p.WorkspaceID != wsID || p.TokenID != tokID {
			t.Fatalf("bearer: %+v %v %v", p, ok, err)
		}
	}
	if lk.lookups != 1 {
		t.Fatalf("50 requests made %d lookups, want 1 (cached)", lk.lookups)
	}
	var used sql.NullTime
	if err := st.DB.QueryRow(`SELECT last_used_at FROM auth_tokens WHERE id = $1`, tokID).Scan(&used); err != nil {
		t.Fatal(err)
	}
	if used.Valid {
		t.Fatal("authenticating wrote last_used_at on the request path")
	}
	if err := a.FlushLastUsed(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.DB.QueryRow(`SELECT last_used_at FROM auth_tokens WHERE id = $1`, tokID).Scan(&used); err != nil {
		t.Fatal(err)
	}
	if !used.Valid || time.Since(used.Time) > time.Minute {
		t.Fatalf("last_used_at after flush: %v", used)
	}
}

// A revoked token is refused at once after Invalidate, and unknown tokens
// are negatively cached.
func TestRevocationAndNegativeCache(t *testing.T) {
	st := testutil.NewStore(t)
	ctx := context.Background()
	wsID, tokID, plain := newWorkspaceToken(t, st)
	lk := &countingLookup{Store: st}
	a := auth.New("the-admin-token-0123456789", lk)
	if _, ok, _ := a.Bearer(ctx, plain); !ok {
		t.Fatal("fresh token refused")
	}
	if err := st.RevokeWorkspaceToken(ctx, wsID, tokID); err != nil {
		t.Fatal(err)
	}
	a.Invalidate()
	if _, ok, _ := a.Bearer(ctx, plain); ok {
		t.Fatal("revoked token accepted after Invalidate")
	}
	before := lk.lookups
	for range 10 {
		if _, ok, _ := a.Bearer(ctx, "garbage-token"); ok {
			t.Fatal("garbage accepted")
		}
	}
	if lk.lookups-before != 1 {
		t.Fatalf("garbage looked up %d times, want 1", lk.lookups-before)
	}
}

// No path fails open: a lookup error is ErrUnavailable, never a principal;
// the admin token works without the database; an empty bearer is nobody.
func TestFailsClosed(t *testing.T) {
	lk := &countingLookup{fail: errors.New("connection refused")}
	a := auth.New("the-admin-token-0123456789", lk)
	ctx := context.Background()
	p, ok, err := a.Bearer(ctx, "some-token")
	if ok || !errors.Is(err, auth.ErrUnavailable) || p.Kind != auth.None {
		t.Fatalf("lookup error: %+v %v %v", p, ok, err)
	}
	// Errors are not cached: the next request asks again.
	a.Bearer(ctx, "some-token")
	if lk.lookups != 2 {
		t.Fatalf("error answer was cached (%d lookups)", lk.lookups)
	}
	if p, ok, err := a.Bearer(ctx, "the-admin-token-0123456789"); !ok || err != nil || p.Kind != auth.Admin || !p.IsAdmin() {
		t.Fatalf("admin: %+v %v %v", p, ok, err)
	}
	if _, ok, _ := a.Bearer(ctx, ""); ok {
		t.Fatal("empty bearer accepted")
	}
	if _, ok, _ := a.Session(ctx, ""); ok {
		t.Fatal("empty cookie accepted")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("an empty admin token must not build an authenticator")
		}
	}()
	auth.New("", lk)
}

func BenchmarkBearerCached(b *testing.B) {
	st := testutil.NewStore(b)
	_, _, plain := newWorkspaceToken(b, st)
	a := auth.New("the-admin-token-0123456789", st)
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok, _ := a.Bearer(ctx, plain); !ok {
				b.Fatal("refused")
			}
		}
	})
}
