package provisionhook_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moleculesai/molecule/pkg/provisionhook"
)

// funcMutator adapts a function to EnvMutator.
type funcMutator struct {
	name string
	fn   func(ctx context.Context, ws provisionhook.WorkspaceInfo, env map[string]string) error
}

func (f *funcMutator) Name() string { return f.name }
func (f *funcMutator) MutateEnv(ctx context.Context, ws provisionhook.WorkspaceInfo, env map[string]string) error {
	return f.fn(ctx, ws, env)
}

// tokenMutator is a mutator that is also a TokenProvider.
type tokenMutator struct {
	funcMutator
	token string
}

func (t *tokenMutator) Token(context.Context) (string, time.Time, error) {
	return t.token, time.Unix(1_900_000_000, 0), nil
}

func setter(name, key, value string) *funcMutator {
	return &funcMutator{name: name, fn: func(_ context.Context, _ provisionhook.WorkspaceInfo, env map[string]string) error {
		env[key] = value
		return nil
	}}
}

var testWS = provisionhook.WorkspaceInfo{ID: "ws-1", Name: "Alice", Role: "dev", Runtime: "molecule-agent", Tier: 2}

func TestRunOrderAndChaining(t *testing.T) {
	r := provisionhook.NewRegistry()
	var order []string
	// Each mutator appends its name to TRAIL, so the final value proves both
	// the order and that each one saw the previous output.
	for _, name := range []string{"a", "b", "c"} {
		r.Register(&funcMutator{name: name, fn: func(_ context.Context, ws provisionhook.WorkspaceInfo, env map[string]string) error {
			if ws != testWS {
				return fmt.Errorf("unexpected workspace %+v", ws)
			}
			order = append(order, name)
			env["TRAIL"] += name
			return nil
		}})
	}
	// A later mutator overrides what a built-in and an earlier mutator set.
	r.Register(setter("override", "GIT_AUTHOR_NAME", "Plugin"))

	env := map[string]string{"TRAIL": ">", "GIT_AUTHOR_NAME": "Molecule AI Alice"}
	if err := r.Run(context.Background(), testWS, env); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := strings.Join(order, ","); got != "a,b,c" {
		t.Errorf("order = %q, want a,b,c", got)
	}
	if env["TRAIL"] != ">abc" {
		t.Errorf("TRAIL = %q, want >abc", env["TRAIL"])
	}
	if env["GIT_AUTHOR_NAME"] != "Plugin" {
		t.Errorf("GIT_AUTHOR_NAME = %q, want Plugin", env["GIT_AUTHOR_NAME"])
	}
}

func TestRunFirstErrorAborts(t *testing.T) {
	boom := errors.New("vault unreachable")
	r := provisionhook.NewRegistry()
	r.Register(setter("first", "A", "1"))
	r.Register(&funcMutator{name: "vault", fn: func(context.Context, provisionhook.WorkspaceInfo, map[string]string) error { return boom }})
	var laterRan atomic.Bool
	r.Register(&funcMutator{name: "later", fn: func(context.Context, provisionhook.WorkspaceInfo, map[string]string) error {
		laterRan.Store(true)
		return nil
	}})

	env := map[string]string{}
	err := r.Run(context.Background(), testWS, env)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want wrapping %v", err, boom)
	}
	var me *provisionhook.MutatorError
	if !errors.As(err, &me) || me.Name != "vault" {
		t.Fatalf("err = %#v, want *MutatorError named vault", err)
	}
	if !strings.Contains(err.Error(), `"vault"`) || !strings.Contains(err.Error(), "vault unreachable") {
		t.Errorf("message %q should name the mutator and keep its error", err.Error())
	}
	if laterRan.Load() {
		t.Error("a mutator after the failing one ran")
	}
	if env["A"] != "1" {
		t.Errorf("mutators before the failure should have run, env = %v", env)
	}
}

func TestRunRecoversPanic(t *testing.T) {
	r := provisionhook.NewRegistry()
	r.Register(&funcMutator{name: "buggy", fn: func(context.Context, provisionhook.WorkspaceInfo, map[string]string) error {
		panic("secret-value-in-panic")
	}})
	err := r.Run(context.Background(), testWS, map[string]string{})
	if !errors.Is(err, provisionhook.ErrMutatorPanic) {
		t.Fatalf("err = %v, want ErrMutatorPanic", err)
	}
	if strings.Contains(err.Error(), "secret-value-in-panic") {
		t.Errorf("panic value leaked into the message: %q", err.Error())
	}
	var pe *provisionhook.PanicError
	if !errors.As(err, &pe) || pe.Value != "secret-value-in-panic" || len(pe.Stack) == 0 {
		t.Errorf("PanicError should carry value and stack for logs, got %#v", pe)
	}
}

func TestNilRegistryIsNoOp(t *testing.T) {
	var r *provisionhook.Registry
	r.Register(setter("x", "A", "1")) // must not panic
	if ms := r.Mutators(); ms != nil {
		t.Errorf("Mutators = %v, want nil", ms)
	}
	env := map[string]string{"K": "v"}
	if err := r.Run(context.Background(), testWS, env); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if len(env) != 1 || env["K"] != "v" {
		t.Errorf("env changed: %v", env)
	}
	if tp := r.FirstTokenProvider(); tp != nil {
		t.Errorf("FirstTokenProvider = %v, want nil", tp)
	}
}

func TestZeroValueRegistryUsable(t *testing.T) {
	var r provisionhook.Registry
	if err := r.Run(context.Background(), testWS, nil); err != nil {
		t.Errorf("empty registry with nil env: %v", err)
	}
	r.Register(setter("x", "A", "1"))
	env := map[string]string{}
	if err := r.Run(context.Background(), testWS, env); err != nil || env["A"] != "1" {
		t.Errorf("Run = %v, env = %v", err, env)
	}
	if err := r.Run(context.Background(), testWS, nil); !errors.Is(err, provisionhook.ErrNilEnv) {
		t.Errorf("nil env with mutators: err = %v, want ErrNilEnv", err)
	}
}

func TestNilMutatorsDropped(t *testing.T) {
	r := provisionhook.NewRegistry()
	var typedNil *funcMutator
	var typedNilToken *tokenMutator
	r.Register(nil)
	r.Register(typedNil)
	r.Register(typedNilToken)
	if n := len(r.Mutators()); n != 0 {
		t.Fatalf("registered %d mutators, want 0", n)
	}
	if err := r.Run(context.Background(), testWS, map[string]string{}); err != nil {
		t.Errorf("Run: %v", err)
	}
	if tp := r.FirstTokenProvider(); tp != nil {
		t.Errorf("a typed nil became the token provider: %v", tp)
	}
}

func TestMutatorsIsSnapshot(t *testing.T) {
	r := provisionhook.NewRegistry()
	r.Register(setter("a", "A", "1"))
	snap := r.Mutators()
	snap[0] = setter("evil", "B", "2")
	r.Register(setter("b", "B", "1"))
	if len(snap) != 1 {
		t.Errorf("snapshot grew to %d", len(snap))
	}
	got := r.Mutators()
	if len(got) != 2 || got[0].Name() != "a" || got[1].Name() != "b" {
		t.Errorf("registry changed through the snapshot: %v", got)
	}
}

func TestFirstTokenProvider(t *testing.T) {
	r := provisionhook.NewRegistry()
	if r.FirstTokenProvider() != nil {
		t.Fatal("empty registry has a token provider")
	}
	r.Register(setter("plain", "A", "1"))
	if r.FirstTokenProvider() != nil {
		t.Fatal("a plain mutator became the token provider")
	}
	first := &tokenMutator{funcMutator: *setter("gh1", "B", "1"), token: "one"}
	second := &tokenMutator{funcMutator: *setter("gh2", "C", "1"), token: "two"}
	r.Register(first)
	r.Register(second)
	tp := r.FirstTokenProvider()
	if tp == nil {
		t.Fatal("no token provider")
	}
	tok, _, err := tp.Token(context.Background())
	if err != nil || tok != "one" {
		t.Errorf("Token = %q, %v; want the first provider's token", tok, err)
	}
}

func TestRunHonoursContext(t *testing.T) {
	t.Run("cancelled before start", func(t *testing.T) {
		r := provisionhook.NewRegistry()
		var ran atomic.Bool
		r.Register(&funcMutator{name: "m", fn: func(context.Context, provisionhook.WorkspaceInfo, map[string]string) error {
			ran.Store(true)
			return nil
		}})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := r.Run(ctx, testWS, map[string]string{})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		if ran.Load() {
			t.Error("mutator ran with a cancelled context")
		}
	})
	t.Run("cancelled by a mutator stops the rest", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		r := provisionhook.NewRegistry()
		r.Register(&funcMutator{name: "canceller", fn: func(context.Context, provisionhook.WorkspaceInfo, map[string]string) error {
			cancel()
			return nil
		}})
		var ran atomic.Bool
		r.Register(&funcMutator{name: "after", fn: func(context.Context, provisionhook.WorkspaceInfo, map[string]string) error {
			ran.Store(true)
			return nil
		}})
		err := r.Run(ctx, testWS, map[string]string{})
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), `"after"`) {
			t.Errorf("err = %v, want context.Canceled naming the next mutator", err)
		}
		if ran.Load() {
			t.Error("mutator after cancellation ran")
		}
	})
	t.Run("mutator sees the deadline", func(t *testing.T) {
		// The deadline is far enough that it cannot pass before the
		// mutator runs on a loaded machine; the mutator reports it expired.
		want := time.Now().Add(time.Minute)
		ctx, cancel := context.WithDeadline(context.Background(), want)
		defer cancel()
		r := provisionhook.NewRegistry()
		r.Register(&funcMutator{name: "slow", fn: func(ctx context.Context, _ provisionhook.WorkspaceInfo, _ map[string]string) error {
			if dl, ok := ctx.Deadline(); !ok || !dl.Equal(want) {
				t.Errorf("mutator saw deadline %v (set: %v), want %v", dl, ok, want)
			}
			return context.DeadlineExceeded
		}})
		err := r.Run(ctx, testWS, map[string]string{})
		var me *provisionhook.MutatorError
		if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &me) || me.Name != "slow" {
			t.Errorf("err = %v, want the mutator's deadline error", err)
		}
	})
}

// TestConcurrentRegisterAndRun is meant for -race: registrations and runs
// interleave, every run sees a consistent prefix of the registrations.
func TestConcurrentRegisterAndRun(t *testing.T) {
	r := provisionhook.NewRegistry()
	const writers, perWriter, runners = 4, 50, 8
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				key := fmt.Sprintf("K_%d_%d", w, i)
				r.Register(setter(key, key, "1"))
			}
		})
	}
	errs := make(chan error, runners)
	for range runners {
		wg.Go(func() {
			for range 50 {
				env := map[string]string{}
				if err := r.Run(context.Background(), testWS, env); err != nil {
					errs <- err
					return
				}
				_ = r.FirstTokenProvider()
				if n := len(r.Mutators()); n < len(env) {
					errs <- fmt.Errorf("registry shrank: %d mutators, env has %d keys", n, len(env))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	env := map[string]string{}
	if err := r.Run(context.Background(), testWS, env); err != nil {
		t.Fatal(err)
	}
	if len(env) != writers*perWriter || len(r.Mutators()) != writers*perWriter {
		t.Errorf("after all registrations: env %d keys, %d mutators; want %d", len(env), len(r.Mutators()), writers*perWriter)
	}
}
