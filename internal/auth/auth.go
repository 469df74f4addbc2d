// Package auth identifies principals (§1): the admin bearer, org tokens,
// canvas sessions and workspace tokens. Lookups go through a short-lived
// cache so the hot paths (heartbeat, A2A) do not query Postgres per request,
// and last use is recorded in memory and flushed in batches so that
// authenticating never writes a row.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/store"
)

// Kind of principal.
type Kind int

// The principals of §1. Admin, Org and Session all act as admin.
const (
	None Kind = iota
	Admin
	Org
	Session
	Workspace
)

func (k Kind) String() string {
	switch k {
	case Admin:
		return "admin"
	case Org:
		return "org_token"
	case Session:
		return "canvas_session"
	case Workspace:
		return "workspace"
	}
	return "none"
}

// Principal is who made a request.
type Principal struct {
	Kind        Kind
	TokenID     uuid.UUID // org or workspace token id
	WorkspaceID uuid.UUID // for Workspace
}

// IsAdmin reports an admin-acting principal (admin, org token, canvas session).
func (p Principal) IsAdmin() bool { return p.Kind == Admin || p.Kind == Org || p.Kind == Session }

// IsWorkspace reports whether p is the token of workspace id.
func (p Principal) IsWorkspace(id uuid.UUID) bool { return p.Kind == Workspace && p.WorkspaceID == id }

// ErrUnavailable means the credential could not be checked (database down):
// the request is refused with 503, never let through.
var ErrUnavailable = errors.New("credential store unavailable")

// NewToken makes a token: 32 random bytes, base64url (43 chars), its
// SHA-256 and its 8-char display prefix.
func NewToken() (plain string, hash []byte, prefix string) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // the platform cannot run without randomness
	}
	plain = base64.RawURLEncoding.EncodeToString(b[:])
	return plain, Hash(plain), plain[:8]
}

// Hash is the at-rest form of a token.
func Hash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// Lookup is the part of the store auth needs.
type Lookup interface {
	LookupToken(ctx context.Context, hash []byte) (store.TokenRecord, error)
	LookupSession(ctx context.Context, hash []byte) (uuid.UUID, error)
	TouchTokens(ctx context.Context, used map[uuid.UUID]time.Time) error
}

// CacheTTL bounds how long a cached answer may be served. A revocation on
// this replica invalidates at once; other replicas see it within CacheTTL.
const CacheTTL = time.Second

// Authenticator resolves credentials to principals.
type Authenticator struct {
	adminHash [32]byte
	lookup    Lookup
	now       func() time.Time

	mu    sync.Mutex
	cache map[[32]byte]cached
	used  map[uuid.UUID]time.Time
}

type cached struct {
	p       Principal
	ok      bool // false: known bad credential (negative cache)
	expires time.Time
}

// New builds an Authenticator. adminToken must not be empty.
func New(adminToken string, lookup Lookup) *Authenticator {
	if adminToken == "" {
		panic("auth: empty admin token") // config guarantees one; never fail open
	}
	return &Authenticator{
		adminHash: sha256.Sum256([]byte(adminToken)),
		lookup:    lookup,
		now:       time.Now,
		cache:     map[[32]byte]cached{},
		used:      map[uuid.UUID]time.Time{},
	}
}

// Bearer resolves an Authorization bearer. ok=false: not a valid credential.
func (a *Authenticator) Bearer(ctx context.Context, token string) (Principal, bool, error) {
	if token == "" {
		return Principal{}, false, nil
	}
	h := sha256.Sum256([]byte(token))
	// Constant-time compare of hashes: the time taken says nothing about the
	// admin token.
	if subtle.ConstantTimeCompare(h[:], a.adminHash[:]) == 1 {
		return Principal{Kind: Admin}, true, nil
	}
	p, ok, err := a.resolve(h, func() (Principal, error) {
		rec, err := a.lookup.LookupToken(ctx, h[:])
		if err != nil {
			return Principal{}, err
		}
		if rec.Kind == store.TokenKindWorkspace {
			return Principal{Kind: Workspace, TokenID: rec.ID, WorkspaceID: rec.WorkspaceID}, nil
		}
		return Principal{Kind: Org, TokenID: rec.ID}, nil
	})
	if ok {
		a.touch(p.TokenID)
	}
	return p, ok, err
}

// Session resolves a canvas session cookie.
func (a *Authenticator) Session(ctx context.Context, cookie string) (Principal, bool, error) {
	if cookie == "" {
		return Principal{}, false, nil
	}
	// Session cache keys are domain-separated from bearer keys.
	h := sha256.Sum256([]byte("session:" + cookie))
	return a.resolve(h, func() (Principal, error) {
		if _, err := a.lookup.LookupSession(ctx, Hash(cookie)); err != nil {
			return Principal{}, err
		}
		return Principal{Kind: Session}, nil
	})
}

// resolve answers from the cache, or asks lookup and caches the answer:
// a known credential and a known-bad one (store.ErrNotFound) alike. Any
// other lookup error is ErrUnavailable and is not cached, so the next
// request asks again; it never lets a request through.
func (a *Authenticator) resolve(h [32]byte, lookup func() (Principal, error)) (Principal, bool, error) {
	if p, ok, hit := a.fromCache(h); hit {
		return p, ok, nil
	}
	p, err := lookup()
	switch {
	case errors.Is(err, store.ErrNotFound):
		a.remember(h, Principal{}, false)
		return Principal{}, false, nil
	case err != nil:
		return Principal{}, false, ErrUnavailable
	}
	a.remember(h, p, true)
	return p, true, nil
}

func (a *Authenticator) fromCache(h [32]byte) (Principal, bool, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, hit := a.cache[h]
	if !hit || a.now().After(c.expires) {
		return Principal{}, false, false
	}
	return c.p, c.ok, true
}

// maxCacheEntries bounds memory under a flood of garbage tokens.
const maxCacheEntries = 100_000

func (a *Authenticator) remember(h [32]byte, p Principal, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cache) >= maxCacheEntries {
		clear(a.cache)
	}
	a.cache[h] = cached{p: p, ok: ok, expires: a.now().Add(CacheTTL)}
}

// Invalidate drops every cached answer. Called on any revocation on this
// replica, so it takes effect immediately; revocations are rare, so
// dropping everything is simpler than tracking token→hash.
func (a *Authenticator) Invalidate() {
	a.mu.Lock()
	clear(a.cache)
	a.mu.Unlock()
}

func (a *Authenticator) touch(id uuid.UUID) {
	a.mu.Lock()
	a.used[id] = a.now()
	a.mu.Unlock()
}

// FlushLastUsed writes the batched last-use times in one statement.
func (a *Authenticator) FlushLastUsed(ctx context.Context) error {
	a.mu.Lock()
	batch := a.used
	a.used = map[uuid.UUID]time.Time{}
	a.mu.Unlock()
	if err := a.lookup.TouchTokens(ctx, batch); err != nil {
		// Put them back so the next flush retries; newer times win.
		a.mu.Lock()
		for id, t := range batch {
			if cur, ok := a.used[id]; !ok || cur.Before(t) {
				a.used[id] = t
			}
		}
		a.mu.Unlock()
		return err
	}
	return nil
}
