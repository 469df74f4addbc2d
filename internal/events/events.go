// Package events is the broadcaster (§10): record-and-broadcast stores an
// event in Postgres and then publishes it; broadcast-only publishes. Both
// reach every local subscriber through the Hub and, through the Transport,
// every other replica.
package events

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"
)

// Event is the envelope of §10: {event, workspace_id, timestamp, payload}.
// ID is set for stored events only.
type Event struct {
	ID          int64           `json:"id,omitempty"`
	Type        string          `json:"event"`
	WorkspaceID uuid.UUID       `json:"workspace_id"`
	Timestamp   time.Time       `json:"timestamp"`
	Payload     json.RawMessage `json:"payload"`

	// enc caches the wire forms, shared by every copy of the event the hub
	// hands out, so a fan-out to N subscribers encodes once, not N times.
	enc *encoding
}

// Publisher is what the rest of the platform emits events through.
//
// Record stores the event, then publishes it; it returns the stored event
// and an error only when storing failed (publishing is best effort).
// Broadcast publishes without storing and never fails the caller. Both are
// safe for concurrent use.
type Publisher interface {
	Record(ctx context.Context, typ string, workspaceID uuid.UUID, payload any) (Event, error)
	Broadcast(ctx context.Context, typ string, workspaceID uuid.UUID, payload any)
}

// Recorder persists events (the store implements it).
type Recorder interface {
	InsertEvent(ctx context.Context, typ string, wsID uuid.UUID, payload []byte) (int64, time.Time, error)
}

// Transport carries encoded events between replicas. Publish must deliver
// to every replica's Run callback, including this one's, or return an
// error (then the broadcaster delivers to this replica itself). Run blocks
// until ctx ends, re-subscribing after failures.
type Transport interface {
	Publish(ctx context.Context, data []byte) error
	Run(ctx context.Context, deliver func(data []byte))
}

// Broadcaster implements Publisher over a Recorder, a Transport and a Hub.
type Broadcaster struct {
	rec       Recorder
	transport Transport // nil: single node, publish straight into the hub
	hub       *Hub
	log       *slog.Logger
	now       func() time.Time
}

var _ Publisher = (*Broadcaster)(nil)

// NewBroadcaster wires the parts. With a nil transport events only reach
// this process (single node, the in-process bus): publishing hands the
// event straight to the hub, which never blocks, so Broadcast and Record
// cannot stall on a full queue or on Run not having started.
func NewBroadcaster(rec Recorder, transport Transport, hub *Hub, log *slog.Logger) *Broadcaster {
	return &Broadcaster{rec: rec, transport: transport, hub: hub, log: log, now: time.Now}
}

// Hub returns the local subscriber hub.
func (b *Broadcaster) Hub() *Hub { return b.hub }

// Run pumps events from the transport into the hub until ctx ends. Without
// a transport it only waits for ctx.
func (b *Broadcaster) Run(ctx context.Context) {
	if b.transport == nil {
		<-ctx.Done()
		return
	}
	b.transport.Run(ctx, func(data []byte) {
		var ev Event
		if err := json.Unmarshal(data, &ev); err != nil {
			b.log.Warn("dropping undecodable event", "err", err)
			return
		}
		b.hub.Deliver(ev)
	})
}

// encodePayload turns a payload into JSON. Raw bytes that are not valid
// JSON travel as a JSON string rather than breaking the envelope.
func encodePayload(payload any) json.RawMessage {
	var raw []byte
	switch p := payload.(type) {
	case nil:
		return json.RawMessage(`{}`)
	case json.RawMessage:
		raw = p
	case []byte:
		raw = p
	default:
		data, err := json.Marshal(payload)
		if err != nil {
			return json.RawMessage(`{}`)
		}
		return data
	}
	if len(raw) == 0 {
		return json.RawMessage(`{}`)
	}
	if !json.Valid(raw) {
		data, _ := json.Marshal(string(raw))
		return data
	}
	return raw
}

// Record stores then publishes.
func (b *Broadcaster) Record(ctx context.Context, typ string, wsID uuid.UUID, payload any) (Event, error) {
	ev := Event{Type: typ, WorkspaceID: wsID, Payload: encodePayload(payload)}
	id, at, err := b.rec.InsertEvent(ctx, typ, wsID, ev.Payload)
	if err != nil {
		b.log.Error("store event", "event", typ, "workspace_id", wsID, "err", err)
		return ev, err
	}
	ev.ID, ev.Timestamp = id, at.UTC()
	b.publish(ctx, ev)
	return ev, nil
}

// Broadcast publishes without storing.
func (b *Broadcaster) Broadcast(ctx context.Context, typ string, wsID uuid.UUID, payload any) {
	b.publish(ctx, Event{Type: typ, WorkspaceID: wsID, Timestamp: b.now().UTC(), Payload: encodePayload(payload)})
}

func (b *Broadcaster) publish(ctx context.Context, ev Event) {
	if b.transport == nil {
		b.hub.Deliver(ev)
		return
	}
	data, err := json.Marshal(ev)
	if err != nil {
		b.log.Error("encode event", "event", ev.Type, "err", err)
		return
	}
	if err := b.transport.Publish(ctx, data); err != nil {
		if errors.Is(err, ErrNoReceivers) {
			b.hub.Deliver(ev)
			return
		}
		// The transport is down (Redis unreachable): local subscribers still
		// get the event; other replicas miss it (stored events can be
		// replayed with Last-Event-ID). A publish that timed out but did
		// reach Redis can be delivered twice here; stored events carry ids
		// so clients can tell.
		if !errors.Is(err, ErrRedisDown) {
			b.log.Warn("publish event", "event", ev.Type, "err", err)
		}
		b.hub.Deliver(ev)
	}
}
