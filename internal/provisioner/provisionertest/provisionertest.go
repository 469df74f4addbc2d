// Package provisionertest provides a recording provisioner.Lifecycle for
// tests of code that provisions workspaces (the API, the org importer, the
// A2A proxy's restart of dead agents).
package provisionertest

import (
	"context"
	"sort"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/provisioner"
)

// Lifecycle is a provisioner.Lifecycle that runs nothing and records what
// it was asked. It records:
//
//   - every call, in order, as "<op>:<workspace id>" with op one of
//     provision, stop, remove, isrunning, list, read, write, delete
//     (Calls, Count, Total); a failing call is recorded too;
//   - each workspace's config volume, in memory (WriteFiles stores copies,
//     ReadFile/ListFiles/DeletePath read them; SetFile seeds it; Files
//     lists it).
//
// By default it names its backend "fake", every lifecycle call succeeds
// and IsRunning reports (true, nil). SetProvisionErr, SetFilesErr,
// SetNoBackend and SetRunning script failures. All methods are safe for
// concurrent use; the zero value is not ready, use New.
type Lifecycle struct {
	mu           sync.Mutex
	calls        []string
	files        map[uuid.UUID]map[string][]byte
	provisionErr error
	filesErr     error
	noBackend    bool
	running      bool
	runErr       error
}

var _ provisioner.Lifecycle = (*Lifecycle)(nil)

// New returns an empty recording Lifecycle.
func New() *Lifecycle {
	return &Lifecycle{files: map[uuid.UUID]map[string][]byte{}, running: true}
}

// SetProvisionErr makes Provision return err (nil: succeed).
func (f *Lifecycle) SetProvisionErr(err error) {
	f.mu.Lock()
	f.provisionErr = err
	f.mu.Unlock()
}

// SetFilesErr makes every config-file operation return err (nil: work on
// the in-memory volume).
func (f *Lifecycle) SetFilesErr(err error) {
	f.mu.Lock()
	f.filesErr = err
	f.mu.Unlock()
}

// SetNoBackend makes Provision and every config-file operation answer
// provisioner.ErrNoBackend, like a server without a provisioner (they are
// still recorded; Stop, Remove and Backend are unchanged).
func (f *Lifecycle) SetNoBackend(on bool) {
	f.mu.Lock()
	f.noBackend = on
	f.mu.Unlock()
}

// SetRunning scripts what IsRunning answers.
func (f *Lifecycle) SetRunning(running bool, err error) {
	f.mu.Lock()
	f.running, f.runErr = running, err
	f.mu.Unlock()
}

// SetFile seeds a file of a workspace's config volume.
func (f *Lifecycle) SetFile(id uuid.UUID, path string, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.volume(id)[path] = append([]byte(nil), data...)
}

// File returns a copy of a file of the workspace's volume, and whether it
// exists (without recording a call).
func (f *Lifecycle) File(id uuid.UUID, path string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	data, ok := f.files[id][path]
	return append([]byte(nil), data...), ok
}

// Files returns the paths in the workspace's volume, sorted.
func (f *Lifecycle) Files(id uuid.UUID) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []string{}
	for p := range f.files[id] {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Calls returns a copy of the recorded calls, oldest first.
func (f *Lifecycle) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// Count is how many times op was called for the workspace.
func (f *Lifecycle) Count(op string, id uuid.UUID) int {
	return f.count(op + ":" + id.String())
}

// Total is how many times op was called, for any workspace.
func (f *Lifecycle) Total(op string) int {
	return f.count(op + ":")
}

func (f *Lifecycle) count(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

// record appends a call; the caller holds mu.
func (f *Lifecycle) record(op string, id uuid.UUID) {
	f.calls = append(f.calls, op+":"+id.String())
}

// volume returns the workspace's files, creating the map; the caller holds mu.
func (f *Lifecycle) volume(id uuid.UUID) map[string][]byte {
	if f.files[id] == nil {
		f.files[id] = map[string][]byte{}
	}
	return f.files[id]
}

// filesFailure is the scripted error of a config-file call; the caller holds mu.
func (f *Lifecycle) filesFailure() error {
	if f.noBackend {
		return provisioner.ErrNoBackend
	}
	return f.filesErr
}

// Backend implements provisioner.Lifecycle.
func (f *Lifecycle) Backend() string { return "fake" }

// Provision implements provisioner.Lifecycle.
func (f *Lifecycle) Provision(_ context.Context, id uuid.UUID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("provision", id)
	if f.noBackend {
		return provisioner.ErrNoBackend
	}
	return f.provisionErr
}

// Stop implements provisioner.Lifecycle.
func (f *Lifecycle) Stop(_ context.Context, id uuid.UUID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("stop", id)
	return nil
}

// Remove implements provisioner.Lifecycle.
func (f *Lifecycle) Remove(_ context.Context, id uuid.UUID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("remove", id)
	return nil
}

// IsRunning implements provisioner.Lifecycle.
func (f *Lifecycle) IsRunning(_ context.Context, id uuid.UUID) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("isrunning", id)
	return f.running, f.runErr
}

// ListFiles implements provisioner.ConfigFiles: the files under dir ("" is
// the root); depth is not applied (the volume is flat).
func (f *Lifecycle) ListFiles(_ context.Context, id uuid.UUID, dir string, _ int) ([]provisioner.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("list", id)
	if err := f.filesFailure(); err != nil {
		return nil, err
	}
	var out []provisioner.FileInfo
	for p, b := range f.files[id] {
		if dir == "" || strings.HasPrefix(p, dir+"/") {
			out = append(out, provisioner.FileInfo{Path: p, Size: int64(len(b))})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// ReadFile implements provisioner.ConfigFiles.
func (f *Lifecycle) ReadFile(_ context.Context, id uuid.UUID, p string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("read", id)
	if err := f.filesFailure(); err != nil {
		return nil, err
	}
	data, ok := f.files[id][p]
	if !ok {
		return nil, provisioner.ErrNotFound
	}
	return append([]byte(nil), data...), nil
}

// WriteFiles implements provisioner.ConfigFiles.
func (f *Lifecycle) WriteFiles(_ context.Context, id uuid.UUID, files map[string][]byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("write", id)
	if err := f.filesFailure(); err != nil {
		return err
	}
	vol := f.volume(id)
	for p, d := range files {
		vol[p] = append([]byte(nil), d...)
	}
	return nil
}

// DeletePath implements provisioner.ConfigFiles: it removes the file or
// the directory (every file under it).
func (f *Lifecycle) DeletePath(_ context.Context, id uuid.UUID, p string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("delete", id)
	if err := f.filesFailure(); err != nil {
		return err
	}
	found := false
	for k := range f.files[id] {
		if k == p || strings.HasPrefix(k, p+"/") {
			delete(f.files[id], k)
			found = true
		}
	}
	if !found {
		return provisioner.ErrNotFound
	}
	return nil
}
