// Package provisionhook is the public extension API of the Molecule platform's
// provisioner: out-of-tree code registers EnvMutators that adjust a
// workspace's environment right before its agent starts, and may also act as
// the platform's TokenProvider for short-lived git credentials (CONTRACT §12.1).
//
// The provisioner builds the environment in a fixed order (platform
// variables, global secrets, workspace secrets, git identity) and only then
// calls Registry.Run, so a mutator sees — and may override — everything the
// platform decided.
package provisionhook

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"sync"
	"time"
)

// EnvMutator mutates the environment of a workspace right before its agent
// starts.
//
// Contract:
//   - Mutators run after the platform's built-in env, in registration order;
//     each sees the map as left by the previous ones and edits it in place.
//   - A non-nil error aborts that provisioning: the workspace goes `failed`
//     and the error text is stored in its last_sample_error, which users can
//     read. Keep secrets and upstream response bodies out of error messages.
//   - MutateEnv may be called concurrently for different workspaces, so an
//     implementation must be safe for concurrent use. It must not keep env
//     after returning.
//   - It should honour ctx: provisioning has a deadline.
//   - Name is a short stable identifier used in errors and logs.
type EnvMutator interface {
	Name() string
	MutateEnv(ctx context.Context, ws WorkspaceInfo, env map[string]string) error
}

// WorkspaceInfo describes the workspace being provisioned. It is a copy:
// changing it has no effect on the workspace.
type WorkspaceInfo struct {
	ID      string
	Name    string
	Role    string
	Runtime string
	Tier    int
	// ParentID is empty for a root workspace.
	ParentID string
}

// TokenProvider issues short-lived credentials (for the built-in provider, a
// GitHub App installation token) that agents fetch on demand through the
// platform instead of receiving them in their environment.
//
// Contract: safe for concurrent use; implementations are expected to cache
// and return the same token until shortly before expiresAt. The token is a
// secret: it must never appear in errors or logs. An error means no token is
// available right now; callers answer it with a generic message.
type TokenProvider interface {
	Token(ctx context.Context) (token string, expiresAt time.Time, err error)
}

// ErrMutatorPanic is matched (errors.Is) by the error Run returns when a
// mutator panicked. The panic is recovered so that one faulty plugin fails
// one provisioning instead of taking the server down.
var ErrMutatorPanic = errors.New("mutator panicked")

// ErrNilEnv is returned by Run when mutators are registered but env is nil:
// they would have nothing to write into.
var ErrNilEnv = errors.New("provisionhook: nil env map")

// MutatorError is the error Run returns when a mutator fails. Its message
// names the mutator so an operator reading last_sample_error knows which
// plugin aborted the provisioning.
type MutatorError struct {
	Name string
	Err  error
}

func (e *MutatorError) Error() string {
	return fmt.Sprintf("provision hook %q: %v", e.Name, e.Err)
}

func (e *MutatorError) Unwrap() error { return e.Err }

// PanicError carries a recovered panic from a mutator. Its message is generic
// on purpose (the panic value could hold anything, including env values);
// Value and Stack are for server-side logs, reachable with errors.As.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return ErrMutatorPanic.Error() }

// Is makes errors.Is(err, ErrMutatorPanic) true.
func (e *PanicError) Is(target error) bool { return target == ErrMutatorPanic }

// Registry holds the registered mutators. It is safe for concurrent Register
// and Run, its zero value is ready to use, and every method on a nil
// *Registry is a no-op, so the provisioner can hold an optional registry
// without checks.
type Registry struct {
	mu       sync.RWMutex
	mutators []EnvMutator
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

// Register appends m. A nil m — including a typed nil pointer wrapped in the
// interface — is dropped, since calling it would only panic later, far from
// the mistake.
func (r *Registry) Register(m EnvMutator) {
	if r == nil || isNil(m) {
		return
	}
	r.mu.Lock()
	r.mutators = append(r.mutators, m)
	r.mu.Unlock()
}

// Mutators returns a snapshot of the registered mutators in registration
// order. The caller owns the slice.
func (r *Registry) Mutators() []EnvMutator {
	if r == nil {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if len(r.mutators) == 0 {
		return nil
	}
	out := make([]EnvMutator, len(r.mutators))
	copy(out, r.mutators)
	return out
}

// Run applies every mutator to env in registration order. It works on a
// snapshot, so a Register racing with Run affects only later runs. ctx is
// checked before each mutator: once it is done, Run stops and returns an
// error matching ctx.Err(). The first mutator error stops the run and is
// returned as a *MutatorError; env then holds whatever the mutators before
// it (and the failing one) wrote, and the caller must not start the agent.
func (r *Registry) Run(ctx context.Context, ws WorkspaceInfo, env map[string]string) error {
	ms := r.Mutators()
	if len(ms) == 0 {
		return nil
	}
	if env == nil {
		return ErrNilEnv
	}
	for _, m := range ms {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("provisionhook: stopped before %q: %w", m.Name(), err)
		}
		if err := runOne(ctx, m, ws, env); err != nil {
			return &MutatorError{Name: m.Name(), Err: err}
		}
	}
	return nil
}

// FirstTokenProvider returns the first registered mutator that also
// implements TokenProvider, or nil when there is none.
func (r *Registry) FirstTokenProvider() TokenProvider {
	for _, m := range r.Mutators() {
		if tp, ok := m.(TokenProvider); ok {
			return tp
		}
	}
	return nil
}

func runOne(ctx context.Context, m EnvMutator, ws WorkspaceInfo, env map[string]string) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return m.MutateEnv(ctx, ws, env)
}

// isNil reports whether m is nil or an interface holding a nil pointer (or
// other nil-able kind), which a plain m == nil check misses.
func isNil(m EnvMutator) bool {
	if m == nil {
		return true
	}
	v := reflect.ValueOf(m)
	switch v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan, reflect.Interface:
		return v.IsNil()
	}
	return false
}
