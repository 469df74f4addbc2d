package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/moleculesai/molecule/internal/events"
	"github.com/moleculesai/molecule/internal/store"
)

// Stream tuning (§10).
const (
	sseKeepalive  = 15 * time.Second
	sseBuffer     = 256 // events a stream may fall behind before it is dropped
	sseWriteLimit = 10 * time.Second
	replayPage    = 500
	replayMax     = 10_000
)

// GET /events
func (s *Server) listEvents(c *gin.Context) {
	limit, offset, err := page(c, 100, 500)
	if err != nil {
		Fail(c, err)
		return
	}
	out, err := s.store.ListEvents(c.Request.Context(), nil, limit, offset)
	if err != nil {
		Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

// GET /events/:workspaceId — stored events outlive their workspace, so a
// removed workspace still has its history; an id that never named a
// workspace is a 404.
func (s *Server) listWorkspaceEvents(c *gin.Context) {
	id, err := pathUUID(c, "workspaceId")
	if err != nil {
		Fail(c, err)
		return
	}
	limit, offset, err := page(c, 100, 500)
	if err != nil {
		Fail(c, err)
		return
	}
	ok, err := s.store.WorkspaceExisted(c.Request.Context(), id)
	if err != nil {
		Fail(c, err)
		return
	}
	if !ok {
		Fail(c, NotFound("workspace not found"))
		return
	}
	out, err := s.store.ListEvents(c.Request.Context(), &id, limit, offset)
	if err != nil {
		Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

func fromStored(e store.StoredEvent) events.Event {
	ev := events.Event{ID: e.ID, Type: e.Type, Timestamp: e.CreatedAt, Payload: e.Payload}
	if e.WorkspaceID != nil {
		ev.WorkspaceID = *e.WorkspaceID
	}
	return ev
}

// GET /workspaces/:id/events/stream — Server-Sent Events of one workspace
// (§10). The subscription opens before the replay query so nothing falls
// between them; stored events already replayed are skipped by id. A
// client that lets its buffer fill is dropped by the hub and the stream
// ends; writes have a deadline so a stalled socket cannot pin the handler
// either.
func (s *Server) streamEvents(c *gin.Context) {
	ws := loadedWorkspace(c)
	lastID := int64(0)
	replay := false
	if v := c.GetHeader("Last-Event-ID"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			Fail(c, BadRequest("Last-Event-ID must be a stored event id"))
			return
		}
		lastID, replay = n, true
	}
	sub := s.hub.SubscribeWorkspace(ws.ID, sseBuffer)
	defer sub.Close()

	ctx := c.Request.Context()
	var backlog []store.StoredEvent
	for replay && len(backlog) < replayMax {
		after := lastID
		if len(backlog) > 0 {
			after = backlog[len(backlog)-1].ID
		}
		batch, err := s.store.EventsAfter(ctx, ws.ID, after, replayPage)
		if err != nil {
			Fail(c, err)
			return
		}
		backlog = append(backlog, batch...)
		if len(batch) < replayPage {
			break
		}
	}

	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)
	rc := http.NewResponseController(c.Writer)
	w := c.Writer
	// The write deadline is pushed forward on every keepalive rather than
	// on every event (a timer update per event per client is measurable
	// in a fan-out); a stalled socket still fails within one keepalive
	// period plus the write limit.
	extend := func() { _ = rc.SetWriteDeadline(time.Now().Add(s.streamKeepalive + s.streamWriteLimit)) }
	extend()
	// The connection may serve another request after the stream; it must
	// not inherit the stream's deadline.
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
	send := func(frames ...[]byte) bool {
		for _, f := range frames {
			if _, err := w.Write(f); err != nil {
				return false
			}
		}
		return rc.Flush() == nil
	}
	if !send([]byte(": ping\n\n")) {
		return
	}
	if len(backlog) > 0 {
		frames := make([][]byte, 0, len(backlog))
		for _, e := range backlog {
			frames = append(frames, fromStored(e).SSE())
		}
		lastID = backlog[len(backlog)-1].ID
		if !send(frames...) {
			return
		}
	}

	keepalive := time.NewTicker(s.streamKeepalive)
	defer keepalive.Stop()
	var frames [][]byte
	for {
		select {
		case ev, ok := <-sub.C:
			if !ok {
				logger(c).Info("event stream dropped: client too slow", "workspace_id", ws.ID)
				return
			}
			// Batch whatever else is already queued into one flush.
			frames = frames[:0]
			removed := false
			for {
				if ev.ID == 0 || ev.ID > lastID {
					frames = append(frames, ev.SSE())
				}
				// The workspace is gone: its last event ends the stream
				// (a reconnect gets the 404).
				removed = ev.Type == "WORKSPACE_REMOVED"
				if removed || len(sub.C) == 0 || len(frames) >= 64 {
					break
				}
				if ev, ok = <-sub.C; !ok {
					break
				}
			}
			if len(frames) > 0 && !send(frames...) {
				return
			}
			if !ok || removed {
				return
			}
		case <-keepalive.C:
			extend()
			if !send([]byte(": keepalive\n\n")) {
				return
			}
		case <-ctx.Done():
			return
		case <-s.shutdown:
			return
		}
	}
}
