package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Limits cap what one plugin may stage.
type Limits struct {
	MaxFiles     int
	MaxBytes     int64 // all files together
	MaxFileBytes int64
	// Timeout bounds the whole staging, git fetch included.
	Timeout time.Duration
}

// DefaultLimits are generous for a plugin (prompts, skills, small
// scripts) and small for a container's config volume.
func DefaultLimits() Limits {
	return Limits{MaxFiles: 1000, MaxBytes: 20 << 20, MaxFileBytes: 5 << 20, Timeout: 60 * time.Second}
}

const maxDepth = 32

// Stager stages plugins from the local plugins dir and from git.
type Stager struct {
	// PluginsDir holds local plugins (MOLECULE_PLUGINS_DIR).
	PluginsDir string
	// GitBaseURL is where github:// sources are fetched from
	// (MOLECULE_PLUGIN_GIT_BASE_URL, https://github.com by default):
	// <base>/<owner>/<repo>.git.
	GitBaseURL string
	// TempDir is where staging directories are made; "" means os.TempDir.
	TempDir string
	Limits  Limits
}

// Staged is a plugin snapshot in a private temporary directory. Close
// removes it.
type Staged struct {
	Dir      string
	Manifest *Manifest
	// Files are the staged regular files, slash-separated, sorted.
	Files []string
	Bytes int64
	// Digest is the plugin's sha256 (see the package doc).
	Digest string
	// Dropped lists entries that were not staged: symbolic links, devices,
	// sockets, submodules.
	Dropped []string

	tmp    string
	hashes map[string]string
}

// Close removes the staging directory.
func (s *Staged) Close() error { return os.RemoveAll(s.tmp) }

// ReadFiles returns every staged file by path, for delivery.
func (s *Staged) ReadFiles() (map[string][]byte, error) {
	out := make(map[string][]byte, len(s.Files))
	for _, p := range s.Files {
		data, err := os.ReadFile(filepath.Join(s.Dir, filepath.FromSlash(p)))
		if err != nil {
			return nil, err
		}
		out[p] = data
	}
	return out, nil
}

// Stage resolves src and copies the plugin into a staging directory. The
// caller must Close the result. Errors are *Error.
func (st *Stager) Stage(ctx context.Context, src Source) (*Staged, error) {
	lim := st.Limits
	if lim.MaxFiles == 0 {
		lim = DefaultLimits()
	}
	ctx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()
	tmp, err := os.MkdirTemp(st.TempDir, "molecule-plugin-")
	if err != nil {
		return nil, &Error{Kind: KindFetch, Msg: "could not create a staging directory", Err: err}
	}
	s := &Staged{Dir: filepath.Join(tmp, "files"), tmp: tmp, hashes: map[string]string{}}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	if err := os.Mkdir(s.Dir, 0o700); err != nil {
		return nil, &Error{Kind: KindFetch, Msg: "could not create a staging directory", Err: err}
	}
	w := &writer{s: s, lim: lim}
	switch src.Kind {
	case SourceLocal:
		err = st.stageLocal(ctx, w, src.Name)
	case SourceGitHub:
		err = st.stageGit(ctx, w, tmp, src)
	default:
		err = invalidf("unknown source kind")
	}
	if err == nil && ctx.Err() != nil {
		err = timeoutErr(lim)
	}
	if err != nil {
		return nil, err
	}
	if err := s.finish(src); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

func timeoutErr(lim Limits) error {
	return &Error{Kind: KindFetch, Msg: fmt.Sprintf("staging the plugin took longer than %s", lim.Timeout)}
}

// finish reads the manifest and computes the digest.
func (s *Staged) finish(src Source) error {
	if _, ok := s.hashes[ManifestFile]; !ok {
		return invalidf("the plugin has no %s at its root", ManifestFile)
	}
	data, err := os.ReadFile(filepath.Join(s.Dir, ManifestFile))
	if err != nil {
		return &Error{Kind: KindFetch, Msg: "could not read the staged manifest", Err: err}
	}
	m, err := ParseManifest(data)
	if err != nil {
		return err
	}
	if src.Kind == SourceLocal && m.Name != src.Name {
		return invalidf("%s names the plugin %q but it lives in %q", ManifestFile, m.Name, src.Name)
	}
	s.Manifest = m
	sort.Strings(s.Files)
	h := sha256.New()
	for _, p := range s.Files {
		io.WriteString(h, p+"\x00"+s.hashes[p]+"\n")
	}
	s.Digest = hex.EncodeToString(h.Sum(nil))
	return nil
}

// writer puts files into the staging directory under the limits.
type writer struct {
	s   *Staged
	lim Limits
}

// checkPath validates a relative slash path from a source.
func checkPath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) || strings.Contains(p, `\`) {
		return invalidf("the plugin contains an invalid path")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return invalidf("the plugin contains an invalid path")
		}
	}
	if len(p) > 512 {
		return invalidf("the plugin contains a path longer than 512 bytes")
	}
	return nil
}

// add copies one file from r (at most size bytes announced) into staging.
func (w *writer) add(p string, mode fs.FileMode, r io.Reader) error {
	if err := checkPath(p); err != nil {
		return err
	}
	if len(w.s.Files) >= w.lim.MaxFiles {
		return &Error{Kind: KindTooLarge, Msg: fmt.Sprintf("the plugin has more than %d files", w.lim.MaxFiles)}
	}
	dst := filepath.Join(w.s.Dir, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return &Error{Kind: KindFetch, Msg: "could not stage the plugin", Err: err}
	}
	perm := os.FileMode(0o644)
	if mode&0o111 != 0 {
		perm = 0o755
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, perm)
	if err != nil {
		return &Error{Kind: KindFetch, Msg: "could not stage the plugin", Err: err}
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, w.lim.MaxFileBytes+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return &Error{Kind: KindFetch, Msg: "could not stage the plugin", Err: err}
	}
	if n > w.lim.MaxFileBytes {
		return &Error{Kind: KindTooLarge, Msg: fmt.Sprintf("plugin file %q is larger than %d bytes", p, w.lim.MaxFileBytes)}
	}
	w.s.Bytes += n
	if w.s.Bytes > w.lim.MaxBytes {
		return &Error{Kind: KindTooLarge, Msg: fmt.Sprintf("the plugin is larger than %d bytes", w.lim.MaxBytes)}
	}
	w.s.Files = append(w.s.Files, p)
	w.s.hashes[p] = hex.EncodeToString(h.Sum(nil))
	return nil
}

// stageLocal copies <PluginsDir>/<name> without following any symlink:
// the plugin directory itself must be a real directory, entries are read
// with Lstat semantics, and files are opened with O_NOFOLLOW so a file
// swapped for a link mid-copy fails instead of being followed.
func (st *Stager) stageLocal(ctx context.Context, w *writer, name string) error {
	if st.PluginsDir == "" {
		return &Error{Kind: KindNotFound, Msg: fmt.Sprintf("plugin %q not found in the local registry", name)}
	}
	root := filepath.Join(st.PluginsDir, name)
	fi, err := os.Lstat(root)
	if err != nil || !fi.IsDir() {
		return &Error{Kind: KindNotFound, Msg: fmt.Sprintf("plugin %q not found in the local registry", name)}
	}
	return st.copyDir(ctx, w, root, "", 0)
}

func (st *Stager) copyDir(ctx context.Context, w *writer, dir, rel string, depth int) error {
	if depth > maxDepth {
		return invalidf("the plugin nests directories deeper than %d", maxDepth)
	}
	if ctx.Err() != nil {
		return timeoutErr(w.lim)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return &Error{Kind: KindFetch, Msg: "could not read the plugin", Err: err}
	}
	for _, e := range entries {
		p := path.Join(rel, e.Name())
		full := filepath.Join(dir, e.Name())
		switch t := e.Type(); {
		case t&fs.ModeSymlink != 0:
			w.s.Dropped = append(w.s.Dropped, p)
		case t.IsDir():
			if e.Name() == ".git" {
				continue
			}
			if err := st.copyDir(ctx, w, full, p, depth+1); err != nil {
				return err
			}
		case t.IsRegular():
			if err := copyFile(w, full, p); err != nil {
				return err
			}
		default:
			w.s.Dropped = append(w.s.Dropped, p)
		}
	}
	return nil
}

func copyFile(w *writer, full, p string) error {
	f, err := os.OpenFile(full, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			w.s.Dropped = append(w.s.Dropped, p)
			return nil
		}
		return &Error{Kind: KindFetch, Msg: "could not read the plugin", Err: err}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return &Error{Kind: KindFetch, Msg: "could not read the plugin", Err: err}
	}
	if !fi.Mode().IsRegular() {
		w.s.Dropped = append(w.s.Dropped, p)
		return nil
	}
	if fi.Size() > w.lim.MaxFileBytes {
		return &Error{Kind: KindTooLarge, Msg: fmt.Sprintf("plugin file %q is larger than %d bytes", p, w.lim.MaxFileBytes)}
	}
	return w.add(p, fi.Mode(), f)
}
