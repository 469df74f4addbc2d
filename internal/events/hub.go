package events

import (
	"sync"

	"github.com/google/uuid"
)

// Subscription receives events on C. It is closed by Close, or by the hub
// when the subscriber falls behind: a slow client is dropped rather than
// allowed to block everyone else.
type Subscription struct {
	C       <-chan Event
	ch      chan Event
	filter  func(Event) bool
	ws      uuid.UUID
	global  bool // every workspace (filter decides), not just ws
	hub     *Hub
	once    sync.Once
	dropped bool
}

// Dropped reports whether the hub closed the subscription for being slow.
func (s *Subscription) Dropped() bool {
	s.hub.mu.RLock()
	defer s.hub.mu.RUnlock()
	return s.dropped
}

// Close unsubscribes; safe to call more than once.
func (s *Subscription) Close() { s.hub.remove(s, false) }

// Hub fans events out to this process's subscribers. Subscribers to one
// workspace are indexed by it, so delivering an event touches only the
// subscribers that can want it.
type Hub struct {
	mu     sync.RWMutex
	byWS   map[uuid.UUID]map[*Subscription]struct{}
	global map[*Subscription]struct{}
}

// NewHub makes an empty hub.
func NewHub() *Hub {
	return &Hub{byWS: map[uuid.UUID]map[*Subscription]struct{}{}, global: map[*Subscription]struct{}{}}
}

// SubscribeWorkspace delivers the events of one workspace (uuid.Nil: the
// events that name no workspace, never everyone's).
func (h *Hub) SubscribeWorkspace(ws uuid.UUID, buffer int) *Subscription {
	return h.subscribe(ws, false, nil, buffer)
}

// SubscribeAll delivers every event accepted by filter (nil: all). The
// filter runs on the delivering goroutine and must be fast and not block.
func (h *Hub) SubscribeAll(filter func(Event) bool, buffer int) *Subscription {
	return h.subscribe(uuid.Nil, true, filter, buffer)
}

func (h *Hub) subscribe(ws uuid.UUID, global bool, filter func(Event) bool, buffer int) *Subscription {
	if buffer <= 0 {
		buffer = 64
	}
	ch := make(chan Event, buffer)
	s := &Subscription{C: ch, ch: ch, filter: filter, ws: ws, global: global, hub: h}
	h.mu.Lock()
	defer h.mu.Unlock()
	if global {
		h.global[s] = struct{}{}
	} else {
		set := h.byWS[ws]
		if set == nil {
			set = map[*Subscription]struct{}{}
			h.byWS[ws] = set
		}
		set[s] = struct{}{}
	}
	return s
}

func (h *Hub) remove(s *Subscription, slow bool) {
	s.once.Do(func() {
		h.mu.Lock()
		if s.global {
			delete(h.global, s)
		} else if set := h.byWS[s.ws]; set != nil {
			delete(set, s)
			if len(set) == 0 {
				delete(h.byWS, s.ws)
			}
		}
		s.dropped = slow
		h.mu.Unlock()
		close(s.ch)
	})
}

// Count returns the number of live subscriptions.
func (h *Hub) Count() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	n := len(h.global)
	for _, set := range h.byWS {
		n += len(set)
	}
	return n
}

// Deliver hands ev to every interested subscriber without blocking.
// Subscribers that fall behind (their buffer is full) are closed with
// Dropped set. Every copy handed out shares one encoding cache.
func (h *Hub) Deliver(ev Event) {
	if ev.enc == nil {
		ev.enc = &encoding{}
	}
	var slow []*Subscription
	h.mu.RLock()
	for s := range h.byWS[ev.WorkspaceID] {
		if !trySend(s, ev) {
			slow = append(slow, s)
		}
	}
	for s := range h.global {
		if s.filter != nil && !s.filter(ev) {
			continue
		}
		if !trySend(s, ev) {
			slow = append(slow, s)
		}
	}
	h.mu.RUnlock()
	for _, s := range slow {
		h.remove(s, true)
	}
}

func trySend(s *Subscription, ev Event) bool {
	select {
	case s.ch <- ev:
		return true
	default:
		return false
	}
}
