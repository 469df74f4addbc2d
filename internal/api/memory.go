package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/moleculesai/molecule/internal/store"
)

// Key-value memory limits (§9). Keys must be addressable as one path
// segment (GET/DELETE /memory/:key), so "/" is refused.
const (
	memoryKeyMax    = 256
	memoryTTLMax    = 10 * 365 * 24 * 3600 // ten years, in seconds
	memoryListLimit = 1000
)

// validMemoryKey checks a key from a body or a path.
func validMemoryKey(field, key string) error {
	if key == "" {
		return BadRequest(fmt.Sprintf("field %q is required", field))
	}
	if err := checkText(field, key, memoryKeyMax); err != nil {
		return err
	}
	for _, r := range key {
		if r == '/' || unicode.IsControl(r) {
			return BadRequest(fmt.Sprintf("field %q must not contain '/' or control characters", field))
		}
	}
	return nil
}

// GET /workspaces/:id/memory
func (s *Server) listMemory(c *gin.Context) {
	limit, offset, err := page(c, memoryListLimit, memoryListLimit)
	if err != nil {
		Fail(c, err)
		return
	}
	entries, err := s.store.ListMemory(c.Request.Context(), loadedWorkspace(c).ID, limit, offset)
	if err != nil {
		Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, entries)
}

// GET /workspaces/:id/memory/:key
func (s *Server) getMemory(c *gin.Context) {
	key := c.Param("key")
	if err := validMemoryKey("key", key); err != nil {
		Fail(c, err)
		return
	}
	e, err := s.store.GetMemory(c.Request.Context(), loadedWorkspace(c).ID, key)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = NotFound("memory key not found")
		}
		Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, e)
}

type setMemoryRequest struct {
	Key            string          `json:"key"`
	Value          json.RawMessage `json:"value"`
	TTLSeconds     *int64          `json:"ttl_seconds"`
	IfMatchVersion *int64          `json:"if_match_version"`
}

// POST /workspaces/:id/memory
func (s *Server) setMemory(c *gin.Context) {
	var req setMemoryRequest
	if err := bindJSON(c, &req); err != nil {
		Fail(c, err)
		return
	}
	if err := validMemoryKey("key", req.Key); err != nil {
		Fail(c, err)
		return
	}
	if len(req.Value) == 0 {
		Fail(c, BadRequest(`field "value" is required`))
		return
	}
	if err := checkJSONValue("value", req.Value); err != nil {
		Fail(c, err)
		return
	}
	var ttl time.Duration
	if req.TTLSeconds != nil {
		if *req.TTLSeconds < 0 || *req.TTLSeconds > memoryTTLMax {
			Fail(c, BadRequest(fmt.Sprintf(`field "ttl_seconds" must be between 0 (no expiry) and %d`, memoryTTLMax)))
			return
		}
		ttl = time.Duration(*req.TTLSeconds) * time.Second
	}
	if req.IfMatchVersion != nil && *req.IfMatchVersion < 0 {
		Fail(c, BadRequest(`field "if_match_version" must be 0 (create only) or a positive version`))
		return
	}
	version, err := s.store.SetMemory(c.Request.Context(), loadedWorkspace(c).ID, req.Key, req.Value, ttl, req.IfMatchVersion)
	if err != nil {
		var vc *store.VersionConflict
		if errors.As(err, &vc) {
			err = Conflict("memory version mismatch").
				With("expected_version", vc.Expected).With("current_version", vc.Current)
		}
		Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok", "key": req.Key, "version": version})
}

// DELETE /workspaces/:id/memory/:key
func (s *Server) deleteMemory(c *gin.Context) {
	key := c.Param("key")
	if err := validMemoryKey("key", key); err != nil {
		Fail(c, err)
		return
	}
	if err := s.store.DeleteMemory(c.Request.Context(), loadedWorkspace(c).ID, key); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = NotFound("memory key not found")
		}
		Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok", "key": key})
}

// checkJSONValue refuses what Postgres jsonb cannot hold, so it is a 400
// and never a 500: invalid UTF-8 and NUL characters (\u0000) in strings or
// object keys. The full decode runs only when the escape appears at all.
func checkJSONValue(field string, raw json.RawMessage) error {
	if !utf8.Valid(raw) {
		return BadRequest(fmt.Sprintf("field %q must be valid UTF-8", field))
	}
	if !bytes.Contains(raw, []byte(`\u0000`)) {
		return nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return BadRequest(fmt.Sprintf("field %q must be valid JSON", field))
	}
	if hasNUL(v) {
		return BadRequest(fmt.Sprintf("field %q must not contain NUL characters", field))
	}
	return nil
}

func hasNUL(v any) bool {
	switch t := v.(type) {
	case string:
		return strings.IndexByte(t, 0) >= 0
	case []any:
		for _, e := range t {
			if hasNUL(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range t {
			if strings.IndexByte(k, 0) >= 0 || hasNUL(e) {
				return true
			}
		}
	}
	return false
}
