package api_test

import (
	"encoding/json"
	"testing"

	"github.com/moleculesai/molecule/internal/apptest"
)

// wantStatus fails the test unless r has the status, and returns the body
// decoded as an object (nil when it is not one).
func wantStatus(t *testing.T, r *apptest.Response, status int) map[string]any {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d: %s", r.Status, status, r.Body)
	}
	var m map[string]any
	if len(r.Body) > 0 {
		_ = json.Unmarshal(r.Body, &m)
	}
	return m
}
