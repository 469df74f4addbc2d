package store_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/store"
	"github.com/moleculesai/molecule/internal/testutil"
)

func newWorkspace(t *testing.T, st *store.Store) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	ws := &store.Workspace{ID: uuid.New(), Name: "w", Status: store.StatusOnline, External: true}
	if err := st.Tx(ctx, func(tx *sql.Tx) error { return store.InsertWorkspaceTx(ctx, tx, ws) }); err != nil {
		t.Fatal(err)
	}
	return ws.ID
}

func row(name, remote string) func(context.Context) (*store.WorkspaceArtifact, error) {
	return func(context.Context) (*store.WorkspaceArtifact, error) {
		return &store.WorkspaceArtifact{RepoName: name, Namespace: "ns", RemoteURL: remote, Description: "d"}, nil
	}
}

func TestWorkspaceArtifactLink(t *testing.T) {
	st := testutil.NewStore(t)
	ctx := context.Background()
	ws := newWorkspace(t, st)

	if _, err := st.GetWorkspaceArtifact(ctx, ws); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get before link: %v, want ErrNotFound", err)
	}
	// A failing create writes nothing.
	boom := errors.New("upstream down")
	_, err := st.LinkWorkspaceArtifact(ctx, ws, func(context.Context) (*store.WorkspaceArtifact, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("create error = %v, want it returned", err)
	}
	if _, err := st.GetWorkspaceArtifact(ctx, ws); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("failed create left a row: %v", err)
	}

	a, err := st.LinkWorkspaceArtifact(ctx, ws, row("repo-1", "https://git.example/ns/repo-1.git"))
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == uuid.Nil || a.WorkspaceID != ws || a.RepoName != "repo-1" || a.CreatedAt.IsZero() {
		t.Fatalf("linked = %+v", a)
	}
	got, err := st.GetWorkspaceArtifact(ctx, ws)
	if err != nil || got.ID != a.ID || got.RemoteURL != a.RemoteURL || got.Description != "d" {
		t.Fatalf("get = %+v, %v", got, err)
	}

	// Already linked: create must not run.
	called := false
	_, err = st.LinkWorkspaceArtifact(ctx, ws, func(context.Context) (*store.WorkspaceArtifact, error) {
		called = true
		return nil, nil
	})
	if !errors.Is(err, store.ErrArtifactLinked) || called {
		t.Fatalf("second link: err=%v called=%v", err, called)
	}

	// The same repo cannot be linked to a second workspace.
	ws2 := newWorkspace(t, st)
	if _, err := st.LinkWorkspaceArtifact(ctx, ws2, row("repo-1", "")); !errors.Is(err, store.ErrArtifactRepoTaken) {
		t.Fatalf("same repo elsewhere: %v, want ErrArtifactRepoTaken", err)
	}
}

// TestWorkspaceArtifactRefusesBadRows proves the table itself refuses
// credentials in the remote URL and names outside the §18 rule.
func TestWorkspaceArtifactRefusesBadRows(t *testing.T) {
	st := testutil.NewStore(t)
	ctx := context.Background()
	for _, tc := range []struct{ name, remote string }{
		{"ok-name", "https://user:secret@git.example/r.git"},
		{"ok-name", "https://token@git.example/r.git"},
		{"-bad", "https://git.example/r.git"},
		{"", "https://git.example/r.git"},
	} {
		ws := newWorkspace(t, st)
		_, err := st.LinkWorkspaceArtifact(ctx, ws, row(tc.name, tc.remote))
		if err == nil || errors.Is(err, store.ErrArtifactLinked) {
			t.Errorf("%q %q: err = %v, want a check violation", tc.name, tc.remote, err)
		}
		if _, err := st.GetWorkspaceArtifact(ctx, ws); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%q %q: row stored", tc.name, tc.remote)
		}
	}
	// An '@' in the path is not user-info.
	ws := newWorkspace(t, st)
	if _, err := st.LinkWorkspaceArtifact(ctx, ws, row("at-path", "https://git.example/a@b/r.git")); err != nil {
		t.Errorf("@ in path refused: %v", err)
	}
}

// TestWorkspaceArtifactLinkRace runs concurrent links of one workspace:
// exactly one create runs and succeeds; the others see ErrArtifactLinked
// or, while the first holds the lock, ErrArtifactLinkBusy without waiting.
func TestWorkspaceArtifactLinkRace(t *testing.T) {
	st := testutil.NewStore(t)
	ctx := context.Background()
	ws := newWorkspace(t, st)
	const n = 8
	var creates atomic.Int32
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := st.LinkWorkspaceArtifact(ctx, ws, func(context.Context) (*store.WorkspaceArtifact, error) {
				creates.Add(1)
				time.Sleep(20 * time.Millisecond) // widen the window a racy check would lose
				return &store.WorkspaceArtifact{RepoName: "race-" + string(rune('a'+i)), Namespace: "ns"}, nil
			})
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, store.ErrArtifactLinked), errors.Is(err, store.ErrArtifactLinkBusy):
				conflicts.Add(1)
			default:
				t.Errorf("link: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if creates.Load() != 1 || wins.Load() != 1 || conflicts.Load() != n-1 {
		t.Fatalf("creates=%d wins=%d conflicts=%d", creates.Load(), wins.Load(), conflicts.Load())
	}
}

// TestWorkspaceArtifactLinkBusy: a link attempt while another holds the
// workspace's lock answers at once instead of waiting for the upstream call.
func TestWorkspaceArtifactLinkBusy(t *testing.T) {
	st := testutil.NewStore(t)
	ctx := context.Background()
	ws := newWorkspace(t, st)
	inside, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := st.LinkWorkspaceArtifact(ctx, ws, func(context.Context) (*store.WorkspaceArtifact, error) {
			close(inside)
			<-release
			return &store.WorkspaceArtifact{RepoName: "slow", Namespace: "ns"}, nil
		})
		done <- err
	}()
	<-inside
	called := false
	_, err := st.LinkWorkspaceArtifact(ctx, ws, func(context.Context) (*store.WorkspaceArtifact, error) {
		called = true
		return nil, nil
	})
	close(release)
	if !errors.Is(err, store.ErrArtifactLinkBusy) || called {
		t.Fatalf("while busy: err=%v called=%v", err, called)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Another workspace is not blocked by this one's lock.
	other := newWorkspace(t, st)
	if _, err := st.LinkWorkspaceArtifact(ctx, other, row("other", "")); err != nil {
		t.Fatal(err)
	}
}

// TestWorkspaceArtifactsMigrationDownUp: migration 60 reverts cleanly (with a
// row in the table) and applies again.
func TestWorkspaceArtifactsMigrationDownUp(t *testing.T) {
	st := testutil.NewStore(t)
	ctx := context.Background()
	ws := newWorkspace(t, st)
	if _, err := st.LinkWorkspaceArtifact(ctx, ws, row("down-up", "")); err != nil {
		t.Fatal(err)
	}
	if err := store.MigrateDown(st.DB); err != nil {
		t.Fatal(err)
	}
	var exists bool
	if err := st.DB.QueryRow(`SELECT to_regclass('workspace_artifacts') IS NOT NULL`).Scan(&exists); err != nil || exists {
		t.Fatalf("table survives down: exists=%v err=%v", exists, err)
	}
	if err := store.Migrate(st.DB); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetWorkspaceArtifact(ctx, ws); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after up: %v", err)
	}
}
