package api

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/events"
)

// The allowed set follows a2a.CanCommunicate over the snapshot's tree.
func TestTreeSnapshotAllowed(t *testing.T) {
	root, a, sib, child, nephew, root2, orphan, gone := uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()
	snap := newTreeSnapshot(map[uuid.UUID]uuid.UUID{
		root: uuid.Nil, a: root, sib: root, child: a, nephew: sib, root2: uuid.Nil,
		orphan: gone, // parent removed: the chain stops at the orphan
	}, time.Now())
	cases := []struct {
		ws   uuid.UUID
		want []uuid.UUID
	}{
		{a, []uuid.UUID{a, root, sib, child}},
		{root, []uuid.UUID{root, a, sib, child, nephew, root2, orphan}},
		{child, []uuid.UUID{child, a, root}},
		{orphan, []uuid.UUID{orphan, root, root2}},
	}
	for _, c := range cases {
		got := snap.allowed(c.ws)
		if len(got) != len(c.want) {
			t.Fatalf("allowed(%v) has %d entries, want %d", c.ws, len(got), len(c.want))
		}
		for _, id := range c.want {
			if _, ok := got[id]; !ok {
				t.Fatalf("allowed(%v) lacks %v", c.ws, id)
			}
		}
	}
	if snap.allowed(gone) != nil {
		t.Fatal("an unknown workspace has an allowed set")
	}
	acc := &wsAccess{allowed: snap.allowed(a), tree: snap}
	if !acc.pass(child) || acc.pass(nephew) || !acc.pass(uuid.New()) {
		t.Fatal("hub filter: allowed passes, known-denied stops, unknown passes")
	}
}

// However many clients see one tree event, the tree loads once for it;
// fresh() reuses a recent load.
func TestTreeCacheLoadsOncePerEvent(t *testing.T) {
	var loads atomic.Int32
	tc := &treeCache{handled: map[treeEventKey]bool{}, load: func(context.Context) (map[uuid.UUID]uuid.UUID, error) {
		loads.Add(1)
		return map[uuid.UUID]uuid.UUID{}, nil
	}}
	ctx := context.Background()
	if _, err := tc.fresh(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.fresh(ctx, time.Minute); err != nil || loads.Load() != 1 {
		t.Fatalf("fresh reloaded: %d loads", loads.Load())
	}
	ev := events.Event{Type: "WORKSPACE_PROVISIONING", WorkspaceID: uuid.New(), Timestamp: time.Now()}
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := tc.after(ctx, ev); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if loads.Load() != 2 {
		t.Fatalf("%d loads for one tree event seen by 100 clients, want 1 more", loads.Load()-1)
	}
	tc.load = func(context.Context) (map[uuid.UUID]uuid.UUID, error) { return nil, errors.New("db down") }
	ev.Timestamp = ev.Timestamp.Add(time.Second)
	if _, err := tc.after(ctx, ev); err == nil {
		t.Fatal("load error swallowed")
	}
}

func TestRedactSecrets(t *testing.T) {
	cases := []struct{ in, want string }{
		{"OPENAI_API_KEY=sk-proj-abcdefghijklmnop", "OPENAI_API_KEY=[REDACTED]"},
		{`export ANTHROPIC_API_KEY="sk-ant-api03-xyzxyzxyzxyz"`, `export ANTHROPIC_API_KEY=[REDACTED]`},
		{"db_password: hunter2hunter2", "db_password: [REDACTED]"},
		{"GITHUB_TOKEN=ghp_0123456789abcdefghij done", "GITHUB_TOKEN=[REDACTED] done"},
		{"Authorization: Bearer abcdefghijklmnopqrstuvwxyz.123", "Authorization: Bearer [REDACTED]"},
		{"the key is sk-abcdefghijklmnopqrst ok", "the key is [REDACTED] ok"},
		{"token ghs_abcdefghijklmnopqrstuvwxyz", "token [REDACTED]"},
		{"aws AKIAABCDEFGHIJKLMNOP here", "aws [REDACTED] here"},
		// Prose that only resembles a secret stays.
		{"set max_tokens: 500 and use a bearer of news", "set max_tokens: 500 and use a bearer of news"},
		{"ask-me about sk-short", "ask-me about sk-short"},
	}
	for _, c := range cases {
		got, changed := redactSecrets(c.in)
		if got != c.want || changed != (c.in != c.want) {
			t.Errorf("redactSecrets(%q) = %q, %v; want %q", c.in, got, changed, c.want)
		}
	}
}
