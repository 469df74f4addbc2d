package api_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/auth"
	"github.com/moleculesai/molecule/internal/store"
)

// fakeRebuilder records rebuild_config calls.
type fakeRebuilder struct {
	mu  sync.Mutex
	ids []uuid.UUID
	err error
}

func (r *fakeRebuilder) RebuildConfig(_ context.Context, ws *store.Workspace) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, ws.ID)
	return r.err
}

func statusOf(t *testing.T, st *store.Store, id uuid.UUID) string {
	t.Helper()
	var s string
	if err := st.DB.QueryRow(`SELECT status FROM workspaces WHERE id = $1`, id).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

var errBoom = errors.New("boom: pq: relation \"workspaces\" does not exist")

func hashOf(token string) []byte { return auth.Hash(token) }
