package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/a2a"
	"github.com/moleculesai/molecule/internal/auth"
	"github.com/moleculesai/molecule/internal/events"
	"github.com/moleculesai/molecule/internal/store"
)

// WebSocket tuning (§10).
const (
	wsBuffer        = 256
	wsPingInterval  = 20 * time.Second
	wsTreeMaxAge    = 30 * time.Second // periodic refresh of a workspace's allowed set
	wsConnectMaxAge = 2 * time.Second  // a connect storm costs one tree query per 2 s
)

// treeEvents change who may talk to whom (a workspace appears, moves or
// goes away): a workspace's WebSocket recomputes its allowed set on them.
var treeEvents = map[string]bool{
	"WORKSPACE_CREATED": true, "WORKSPACE_PROVISIONING": true, "WORKSPACE_AWAITING_AGENT": true,
	"WORKSPACE_REMOVED": true, "WORKSPACE_MOVED": true, "WORKSPACE_UPDATED": true,
}

// treeCache is one snapshot of the org tree shared by every WebSocket on
// this server, so that deciding whether a client gets an event never
// queries the database: the tree is loaded at most once per tree event
// (however many clients see it) and otherwise when older than a bound.
type treeCache struct {
	load func(ctx context.Context) (map[uuid.UUID]uuid.UUID, error)

	mu      sync.Mutex // serializes loads
	snap    atomic.Pointer[treeSnapshot]
	handled map[treeEventKey]bool // tree events already reflected in snap
}

type treeEventKey struct {
	typ string
	ws  uuid.UUID
	at  int64
	id  int64
}

type treeSnapshot struct {
	parent   map[uuid.UUID]uuid.UUID   // non-removed workspace → parent (Nil: root)
	chains   map[uuid.UUID][]uuid.UUID // workspace → [self, parent, …, root], built once
	loadedAt time.Time
}

func newTreeSnapshot(parent map[uuid.UUID]uuid.UUID, at time.Time) *treeSnapshot {
	s := &treeSnapshot{parent: parent, chains: make(map[uuid.UUID][]uuid.UUID, len(parent)), loadedAt: at}
	for id := range parent {
		s.chains[id] = s.buildChain(id)
	}
	return s
}

func newTreeCache(st *store.Store) *treeCache {
	return &treeCache{load: st.WorkspaceParents, handled: map[treeEventKey]bool{}}
}

// fresh returns a snapshot no older than maxAge.
func (t *treeCache) fresh(ctx context.Context, maxAge time.Duration) (*treeSnapshot, error) {
	ok := func(s *treeSnapshot) bool { return s != nil && time.Since(s.loadedAt) <= maxAge }
	if s := t.snap.Load(); ok(s) {
		return s, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.snap.Load(); ok(s) {
		return s, nil
	}
	return t.reloadLocked(ctx)
}

// after returns a snapshot loaded after tree event ev was seen: the first
// client to see ev reloads, the others reuse that load.
func (t *treeCache) after(ctx context.Context, ev events.Event) (*treeSnapshot, error) {
	key := treeEventKey{ev.Type, ev.WorkspaceID, ev.Timestamp.UnixNano(), ev.ID}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.handled[key] {
		if s := t.snap.Load(); s != nil {
			return s, nil
		}
	}
	s, err := t.reloadLocked(ctx)
	if err != nil {
		return nil, err
	}
	if len(t.handled) > 1024 {
		clear(t.handled)
	}
	t.handled[key] = true
	return s, nil
}

func (t *treeCache) reloadLocked(ctx context.Context) (*treeSnapshot, error) {
	start := time.Now()
	parents, err := t.load(ctx)
	if err != nil {
		return nil, err
	}
	s := newTreeSnapshot(parents, start)
	t.snap.Store(s)
	return s, nil
}

// buildChain is id's ancestry [id, parent, …, root] over live workspaces
// (nil when id is unknown); depth is bounded like store.AncestorChains.
func (s *treeSnapshot) buildChain(id uuid.UUID) []uuid.UUID {
	if _, ok := s.parent[id]; !ok {
		return nil
	}
	out := []uuid.UUID{id}
	for cur := id; len(out) < 64; {
		p, ok := s.parent[cur]
		if !ok || p == uuid.Nil {
			break
		}
		if _, live := s.parent[p]; !live {
			break
		}
		out = append(out, p)
		cur = p
	}
	return out
}

// allowed is the set of workspaces whose events ws may receive: those it
// may talk to (a2a.CanCommunicate, the one place access is decided).
func (s *treeSnapshot) allowed(ws uuid.UUID) map[uuid.UUID]struct{} {
	me := s.chains[ws]
	if me == nil {
		return nil
	}
	out := map[uuid.UUID]struct{}{}
	for id, chain := range s.chains {
		if a2a.CanCommunicate(me, chain) {
			out[id] = struct{}{}
		}
	}
	return out
}

// wsAccess is a workspace connection's view: the workspaces whose events
// it receives, and the tree snapshot that was computed from.
type wsAccess struct {
	allowed map[uuid.UUID]struct{}
	tree    *treeSnapshot
}

// pass is the hub-side filter: allowed, or unknown to the snapshot.
func (a *wsAccess) pass(ws uuid.UUID) bool {
	if _, ok := a.allowed[ws]; ok {
		return true
	}
	_, known := a.tree.parent[ws]
	return !known
}

// originAllowed: browsers always send Origin; it must be this server's own
// origin or one of CORS_ORIGINS. Clients that send none (agents, CLIs)
// are not browsers and cannot be the victim of cross-site hijacking.
func (s *Server) originAllowed(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	for _, own := range s.ownOrigins(r) {
		if strings.EqualFold(o, own) {
			return true
		}
	}
	for _, a := range s.cfg.CORSOrigins {
		if strings.EqualFold(o, strings.TrimSuffix(a, "/")) {
			return true
		}
	}
	return false
}

// GET /ws — admin principals receive every event; a workspace receives the
// events of the workspaces it may talk to (§10).
func (s *Server) eventsSocket(c *gin.Context) {
	if !strings.EqualFold(c.GetHeader("Upgrade"), "websocket") {
		Fail(c, BadRequest("a WebSocket upgrade is required"))
		return
	}
	if !s.originAllowed(c.Request) {
		Fail(c, Forbidden("origin not allowed"))
		return
	}
	p := principal(c)
	var sub *events.Subscription
	var access atomic.Pointer[wsAccess]
	var tree *treeCache
	if p.Kind == auth.Workspace {
		tree = s.wsTree
		snap, err := tree.fresh(c.Request.Context(), wsConnectMaxAge)
		if err != nil {
			Fail(c, err)
			return
		}
		if _, known := snap.parent[p.WorkspaceID]; !known {
			// Created after the shared snapshot was taken.
			if snap, err = tree.fresh(c.Request.Context(), 0); err != nil {
				Fail(c, err)
				return
			}
		}
		set := snap.allowed(p.WorkspaceID)
		if set == nil {
			Fail(c, NotFound("workspace not found"))
			return
		}
		access.Store(&wsAccess{allowed: set, tree: snap})
		// The filter runs on the hub's goroutine: map lookups, no I/O. It
		// passes tree events and events of workspaces the snapshot does not
		// know yet (created after it, their tree event possibly still
		// queued for this client); the connection's goroutine decides
		// those after applying the tree events queued before them.
		sub = s.hub.SubscribeAll(func(ev events.Event) bool {
			return treeEvents[ev.Type] || access.Load().pass(ev.WorkspaceID)
		}, wsBuffer)
	} else {
		sub = s.hub.SubscribeAll(nil, wsBuffer)
	}
	defer sub.Close()

	conn, err := websocket.Accept(c.Writer, c.Request, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // the origin was checked above against CORS_ORIGINS
	})
	if err != nil {
		return // Accept has answered the client
	}
	defer conn.CloseNow()
	conn.SetReadLimit(4096)
	// CloseRead reads (and answers) control frames, so pings get their
	// pongs; ctx ends when the client goes away.
	ctx := conn.CloseRead(context.WithoutCancel(c.Request.Context()))
	log := logger(c)

	recompute := func(snap *treeSnapshot) bool {
		set := snap.allowed(p.WorkspaceID)
		if set == nil {
			return false // this workspace was removed
		}
		access.Store(&wsAccess{allowed: set, tree: snap})
		return true
	}
	// A watchdog instead of a deadline per write (a timer per event per
	// client is measurable in a fan-out): a write stuck longer than the
	// limit closes the connection, which fails the write.
	var writing atomic.Int64
	watchdogDone := make(chan struct{})
	defer close(watchdogDone)
	go func() {
		t := time.NewTicker(s.streamWriteLimit / 2)
		defer t.Stop()
		for {
			select {
			case <-watchdogDone:
				return
			case <-t.C:
				if at := writing.Load(); at != 0 && time.Since(time.Unix(0, at)) > s.streamWriteLimit {
					log.Info("websocket write stalled; closing")
					conn.CloseNow()
					return
				}
			}
		}
	}()
	ping := time.NewTicker(wsPingInterval)
	defer ping.Stop()
	var refresh <-chan time.Time
	if tree != nil {
		t := time.NewTicker(wsTreeMaxAge)
		defer t.Stop()
		refresh = t.C
	}
	for {
		select {
		case ev, ok := <-sub.C:
			if !ok {
				log.Info("websocket dropped: client too slow")
				conn.Close(websocket.StatusPolicyViolation, "client too slow")
				return
			}
			if tree != nil {
				if treeEvents[ev.Type] {
					snap, err := tree.after(ctx, ev)
					if err == nil && !recompute(snap) {
						conn.Close(websocket.StatusPolicyViolation, "workspace removed")
						return
					}
				}
				if _, ok := access.Load().allowed[ev.WorkspaceID]; !ok {
					continue
				}
			}
			writing.Store(time.Now().UnixNano())
			err := conn.Write(ctx, websocket.MessageText, ev.JSON())
			writing.Store(0)
			if err != nil {
				return
			}
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, s.streamWriteLimit)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					log.Info("websocket ping failed; closing", "err", err)
				}
				return
			}
		case <-refresh:
			if snap, err := tree.fresh(ctx, wsTreeMaxAge); err == nil && !recompute(snap) {
				conn.Close(websocket.StatusPolicyViolation, "workspace removed")
				return
			}
		case <-ctx.Done():
			return
		case <-s.shutdown:
			conn.Close(websocket.StatusGoingAway, "server shutting down")
			return
		}
	}
}
