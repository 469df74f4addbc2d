package provisioner

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/secrets"
	"github.com/moleculesai/molecule/internal/store"
	"github.com/moleculesai/molecule/pkg/provisionhook"
)

// GitEmailDomain is the domain of the agents' git e-mail addresses (§12).
const GitEmailDomain = "agents.moleculesai.app"

// backendOwned are variables a backend sets for its own wiring; a secret
// may not replace them (secrets validation rejects most of them already;
// this is defence in depth for rows written before a name became reserved).
var backendOwned = map[string]bool{"AGENT_URL": true, "AGENT_LISTEN": true}

// Env is an ordered environment: the first Set of a key fixes its place,
// later Sets replace the value in place.
type Env struct {
	keys []string
	vals map[string]string
}

// NewEnv returns an empty Env.
func NewEnv() *Env { return &Env{vals: map[string]string{}} }

// Set adds or replaces key.
func (e *Env) Set(k, v string) {
	if _, ok := e.vals[k]; !ok {
		e.keys = append(e.keys, k)
	}
	e.vals[k] = v
}

// Has reports whether key is set.
func (e *Env) Has(k string) bool { _, ok := e.vals[k]; return ok }

// Get returns key's value.
func (e *Env) Get(k string) string { return e.vals[k] }

// Map copies the env into a map (for the hooks).
func (e *Env) Map() map[string]string {
	m := make(map[string]string, len(e.vals))
	for k, v := range e.vals {
		m[k] = v
	}
	return m
}

// Apply makes the env equal to m: kept keys stay in place, deleted ones go,
// new ones are appended in sorted order (map iteration is random; the
// result must be deterministic).
func (e *Env) Apply(m map[string]string) {
	kept := e.keys[:0]
	for _, k := range e.keys {
		if _, ok := m[k]; ok {
			kept = append(kept, k)
		}
	}
	e.keys = kept
	var added []string
	for k := range m {
		if _, ok := e.vals[k]; !ok {
			added = append(added, k)
		}
	}
	sort.Strings(added)
	e.keys = append(e.keys, added...)
	e.vals = make(map[string]string, len(m))
	for k, v := range m {
		e.vals[k] = v
	}
}

// List is KEY=value in order.
func (e *Env) List() []string {
	out := make([]string, len(e.keys))
	for i, k := range e.keys {
		out[i] = k + "=" + e.vals[k]
	}
	return out
}

// EnvInput is what BuildEnv needs besides the hooks.
type EnvInput struct {
	Workspace   *store.Workspace
	PlatformURL string
	// Global and Workspace secrets, already opened, in the order to apply.
	Global    []KV
	Secrets   []KV
	Hooks     *provisionhook.Registry
	HookInput provisionhook.WorkspaceInfo
}

// KV is one opened secret.
type KV struct{ Key, Value string }

// BuildEnv builds the agent's environment in the §12 order: the platform's
// variables, global secrets, workspace secrets (workspace wins), the git
// identity where unset, then every registered EnvMutator. A mutator error
// is returned as is (a *provisionhook.MutatorError).
func BuildEnv(ctx context.Context, in EnvInput) (*Env, error) {
	ws := in.Workspace
	env := NewEnv()
	env.Set("WORKSPACE_ID", ws.ID.String())
	env.Set("PLATFORM_URL", in.PlatformURL)
	env.Set("MOLECULE_URL", in.PlatformURL)
	env.Set("WORKSPACE_CONFIG_PATH", "/configs")
	env.Set("TIER", strconv.Itoa(ws.Tier))
	env.Set("PYTHONPATH", "/app")
	builtin := env.Map()
	for _, group := range [][]KV{in.Global, in.Secrets} {
		for _, kv := range group {
			if _, ok := builtin[kv.Key]; ok || backendOwned[kv.Key] || secrets.ValidateName(kv.Key) != nil {
				continue
			}
			env.Set(kv.Key, kv.Value)
		}
	}
	id := GitIdentity(ws.Name, ws.ID)
	for _, k := range []string{"GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"} {
		if v, ok := id[k]; ok && !env.Has(k) {
			env.Set(k, v)
		}
	}
	if len(in.Hooks.Mutators()) > 0 {
		m := env.Map()
		if err := in.Hooks.Run(ctx, in.HookInput, m); err != nil {
			return nil, err
		}
		env.Apply(m)
	}
	return env, nil
}

// GitIdentity is the agent's default git author/committer (§12): name
// "Molecule AI <workspace name>", e-mail "<slug>@agents.moleculesai.app".
// An empty or whitespace name yields no identity. Characters git refuses
// in an identity ('<', '>', newlines, control characters) become spaces.
// A name with no ASCII letter or digit gets the slug "ws-<id[:8]>".
func GitIdentity(name string, wsID uuid.UUID) map[string]string {
	clean := strings.Join(strings.Fields(strings.Map(func(r rune) rune {
		if r == '<' || r == '>' || r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, name)), " ")
	if clean == "" {
		return nil
	}
	slug := Slug(clean)
	if slug == "" {
		slug = "ws-" + wsID.String()[:8]
	}
	full := "Molecule AI " + clean
	email := slug + "@" + GitEmailDomain
	return map[string]string{
		"GIT_AUTHOR_NAME": full, "GIT_AUTHOR_EMAIL": email,
		"GIT_COMMITTER_NAME": full, "GIT_COMMITTER_EMAIL": email,
	}
}

// Slug lower-cases s and turns every run of characters other than ASCII
// letters and digits into one "-", trimming dashes at both ends.
func Slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			continue
		}
		dash = true
	}
	return b.String()
}

// openSecrets opens sealed rows with the keyring; a row that fails to open
// (wrong key, moved ciphertext) aborts, naming the key but never a value.
func openSecrets(k *secrets.Keyring, owner string, rows []store.SealedSecret) ([]KV, error) {
	out := make([]KV, 0, len(rows))
	for _, r := range rows {
		pt, err := k.Open(r.Sealed, owner, r.Key)
		if err != nil {
			return nil, fmt.Errorf("secret %s cannot be opened with the configured keys", r.Key)
		}
		out = append(out, KV{r.Key, string(pt)})
	}
	return out, nil
}
