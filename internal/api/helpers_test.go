package api_test

import (
	"bytes"
	"encoding/json"
	"sync"
	"testing"

	"github.com/moleculesai/molecule/internal/apptest"
)

// wantStatus fails the test unless r has the status, and returns the body
// decoded as an object (nil when it is not one).
func wantStatus(t *testing.T, r *apptest.Response, status int) map[string]any {
	t.Helper()
	r.Expect(t, status)
	var m map[string]any
	if len(r.Body) > 0 {
		_ = json.Unmarshal(r.Body, &m)
	}
	return m
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
