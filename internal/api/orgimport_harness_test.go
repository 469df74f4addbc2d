package api

import (
	"testing"

	"github.com/moleculesai/molecule/internal/apptest/kit"
	"github.com/moleculesai/molecule/internal/provisioner/provisionertest"
)

// newOrgEnv is a TestServer for the org import and plugin tests, on a
// fresh database with the given recording provisioner.
func newOrgEnv(t testing.TB, env map[string]string, fake *provisionertest.Lifecycle) *TestServer {
	t.Helper()
	return NewTestServer(t, TestServerOptions{Env: env, Lifecycle: fake})
}

// Count counts the rows of table matching an optional WHERE clause.
func (ts *TestServer) Count(table string, where ...string) int {
	ts.t.Helper()
	w := ""
	if len(where) > 0 {
		w = where[0]
	}
	return kit.Count(ts.t, ts.Store.DB, table, w)
}
