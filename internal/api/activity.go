package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/moleculesai/molecule/internal/store"
)

const (
	activityTypeMax    = 64
	activitySummaryMax = 4096
)

// platformActivity are the types only the platform writes: an agent
// cannot forge a call or a delegation in its log.
var platformActivity = map[string]bool{
	store.ActivityA2ASend: true, store.ActivityA2AReceive: true, store.ActivityDelegation: true,
}

func validActivityType(t string) bool {
	if t == "" || len(t) > activityTypeMax {
		return false
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.' || r == ':') {
			return false
		}
	}
	return true
}

// GET /workspaces/:id/activity?type&limit&offset: newest first (default
// 100, max 500).
func (s *Server) listActivity(c *gin.Context) {
	ws := loadedWorkspace(c)
	limit, offset, err := page(c, 100, 500)
	if err != nil {
		Fail(c, err)
		return
	}
	typ := c.Query("type")
	if typ != "" && !validActivityType(typ) {
		Fail(c, BadRequest("type must be 1-64 characters of a-z, 0-9, _ - . :"))
		return
	}
	rows, err := s.store.ListActivity(c.Request.Context(), ws.ID, typ, limit, offset)
	if err != nil {
		Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, rows)
}

// POST /workspaces/:id/activity: the agent reports {activity_type,
// summary, …}; every other field is kept as the row's details. 201 with
// the stored row and an ACTIVITY_LOGGED event.
func (s *Server) postActivity(c *gin.Context) {
	ws := loadedWorkspace(c)
	// Decoding into values (not raw bytes) normalizes escapes: a lone
	// surrogate becomes U+FFFD instead of failing the jsonb insert.
	var body map[string]any
	if err := bindJSON(c, &body); err != nil {
		Fail(c, err)
		return
	}
	typ, ok := body["activity_type"].(string)
	if !ok {
		Fail(c, BadRequest(`field "activity_type" is required and must be a string`))
		return
	}
	if !validActivityType(typ) {
		Fail(c, BadRequest(`field "activity_type" must be 1-64 characters of a-z, 0-9, _ - . :`))
		return
	}
	if platformActivity[typ] {
		Fail(c, BadRequest(`activity_type "`+typ+`" is recorded by the platform itself`))
		return
	}
	var summary string
	if v, ok := body["summary"]; ok && v != nil {
		if summary, ok = v.(string); !ok {
			Fail(c, BadRequest(`field "summary" must be a string`))
			return
		}
		if err := checkText("summary", summary, activitySummaryMax); err != nil {
			Fail(c, err)
			return
		}
	}
	delete(body, "activity_type")
	delete(body, "summary")
	details, err := json.Marshal(body)
	if err != nil {
		Fail(c, BadRequest("malformed JSON"))
		return
	}
	// Postgres jsonb holds neither NUL nor invalid UTF-8: refuse them
	// rather than fail the insert.
	if !utf8.Valid(details) || bytes.Contains(details, []byte(`\u0000`)) {
		Fail(c, BadRequest("activity fields must be valid UTF-8 without NUL characters"))
		return
	}
	a := &store.Activity{WorkspaceID: ws.ID, ActivityType: typ, Summary: summary, Details: details}
	if err := s.store.InsertActivity(c.Request.Context(), a); err != nil {
		Fail(c, err)
		return
	}
	a.CreatedAt = a.CreatedAt.UTC()
	s.events.Broadcast(c.Request.Context(), "ACTIVITY_LOGGED", ws.ID, a)
	c.JSON(http.StatusCreated, a)
}
