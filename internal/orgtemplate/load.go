package orgtemplate

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Limits that keep a hostile or broken template from exhausting the server.
const (
	// MaxIncludeDepth is how deep !include may nest below org.yaml.
	MaxIncludeDepth = 16
	// DefaultMaxFileSize caps each file read (org.yaml, includes, prompt
	// files, .env) and an inline template.
	DefaultMaxFileSize = 1 << 20
	// maxIncludes bounds the total number of !include expansions, so a
	// diamond of includes cannot grow exponentially within the depth cap.
	maxIncludes = 1024
	// maxNodes bounds the YAML nodes visited while decoding, which is what
	// stops alias ("billion laughs") expansion.
	maxNodes = 200_000
	// MaxWorkspaces bounds the number of workspaces one template may create.
	MaxWorkspaces = 1000
)

// OrgFile is the file LoadDir reads at the template root.
const OrgFile = "org.yaml"

// DefaultAllowedEnv is the server environment a template may read when
// Options.AllowedEnv is nil (MOLECULE_TEMPLATE_ENV's default).
var DefaultAllowedEnv = []string{"WORKSPACE_DIR"}

// Options are the inputs from outside the template.
type Options struct {
	// Secrets looks up a global secret by name (second source of ${VAR},
	// after the org's .env). nil means no secrets are visible.
	Secrets func(name string) (string, bool)
	// AllowedEnv lists the server environment variables a template may
	// expand (MOLECULE_TEMPLATE_ENV). nil means DefaultAllowedEnv; an empty
	// non-nil slice means none. No other variable is ever read.
	AllowedEnv []string
	// Getenv reads the server environment; nil means os.Getenv. An empty
	// value counts as unset.
	Getenv func(name string) string
	// MaxFileSize caps every file and an inline template; 0 means
	// DefaultMaxFileSize.
	MaxFileSize int64
}

var errMissing = errors.New("file missing")

type loader struct {
	opts    Options
	root    string // absolute, symlinks resolved; "" for inline
	inline  bool
	origin  map[*yaml.Node]string // root node of an included file -> its name
	dotenv  map[string]string
	allowed map[string]bool

	includes int
	nodes    int
	names    map[string]string // workspace name -> YAML path of first use
	count    int
}

func newLoader(opts Options) *loader {
	if opts.MaxFileSize <= 0 {
		opts.MaxFileSize = DefaultMaxFileSize
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	allowed := opts.AllowedEnv
	if allowed == nil {
		allowed = DefaultAllowedEnv
	}
	l := &loader{
		opts:    opts,
		origin:  map[*yaml.Node]string{},
		allowed: map[string]bool{},
		names:   map[string]string{},
	}
	for _, name := range allowed {
		l.allowed[name] = true
	}
	return l
}

// LoadDir reads <root>/org.yaml, resolves includes and prompt files,
// expands variables and validates the whole tree. A missing root or
// org.yaml is an error for which IsNotFound is true; every other problem
// is an *Error naming the file and YAML path.
func LoadDir(root string, opts Options) (*Org, error) {
	l := newLoader(opts)
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, &Error{Msg: "invalid org template directory"}
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &Error{Msg: ErrNotFound.Error(), err: ErrNotFound}
		}
		return nil, &Error{Msg: "org template directory cannot be read"}
	}
	if st, err := os.Stat(real); err != nil || !st.IsDir() {
		return nil, &Error{Msg: ErrNotFound.Error(), err: ErrNotFound}
	}
	l.root = real

	data, name, _, err := l.readFile(real, OrgFile, "", nil)
	if err != nil {
		if errors.Is(err, errMissing) {
			return nil, &Error{File: OrgFile, Msg: ErrNotFound.Error() + " (no " + OrgFile + ")", err: ErrNotFound}
		}
		return nil, err
	}
	if err := l.loadDotenv(); err != nil {
		return nil, err
	}
	doc, err := l.parse(data, name)
	if err != nil {
		return nil, err
	}
	if err := l.resolve(doc, name, real, []string{name}, ""); err != nil {
		return nil, err
	}
	org, err := l.decodeOrg(doc, name)
	if err != nil {
		return nil, err
	}
	org.Root = real
	return org, nil
}

// ParseInline parses a template sent in a request body. It has no
// directory, so !include, *_file fields, files_dir and .env are refused;
// ${VAR} resolves from secrets and the allowed environment only.
func ParseInline(data []byte, opts Options) (*Org, error) {
	l := newLoader(opts)
	l.inline = true
	if int64(len(data)) > l.opts.MaxFileSize {
		return nil, &Error{Msg: fmt.Sprintf("template is larger than %d bytes", l.opts.MaxFileSize)}
	}
	doc, err := l.parse(data, "")
	if err != nil {
		return nil, err
	}
	if err := l.resolve(doc, "", "", nil, ""); err != nil {
		return nil, err
	}
	return l.decodeOrg(doc, "")
}

// parse turns one file into its root YAML node.
func (l *loader) parse(data []byte, file string) (n *yaml.Node, err error) {
	// The YAML library has panicked on hostile input in past releases; a
	// template must never take the server down with it.
	defer func() {
		if r := recover(); r != nil {
			n, err = nil, &Error{File: file, Msg: "invalid YAML"}
		}
	}()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		// The YAML library's message is about the author's own text
		// ("line 3: did not find expected key"); it is safe to show.
		return nil, &Error{File: file, Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, &Error{File: file, Msg: "file is empty"}
	}
	return doc.Content[0], nil
}

// resolve replaces every !include node below n, in place, by the root of
// the included file. file and dir are the including file's name (relative
// to the root) and real directory; chain is the include chain so far.
//
// ypath is the YAML path of n, for error messages; merge keys (<<) add no
// segment since their content lands in the enclosing mapping.
func (l *loader) resolve(n *yaml.Node, file, dir string, chain []string, ypath string) error {
	if n.Kind == yaml.AliasNode {
		// The anchor it points to is resolved where it is defined.
		return nil
	}
	if n.Tag == "!include" {
		return l.include(n, file, dir, chain, ypath)
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		return &Error{File: file, Line: n.Line, Path: ypath, Msg: fmt.Sprintf("unknown tag %q (only !include is supported)", n.Tag)}
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Tag == "!include" {
				return &Error{File: file, Line: k.Line, Path: ypath, Msg: "!include cannot be used on a mapping key"}
			}
			sub := ypath
			if k.Tag != "!!merge" {
				sub = joinPath(ypath, k.Value)
			}
			if err := l.resolve(n.Content[i+1], file, dir, chain, sub); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if err := l.resolve(c, file, dir, chain, ypath+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *loader) include(n *yaml.Node, file, dir string, chain []string, ypath string) error {
	fail := func(err error) error {
		var e *Error
		if errors.As(err, &e) && e.Path == "" {
			e.Path = ypath
		}
		return err
	}
	if l.inline {
		return &Error{File: file, Line: n.Line, Path: ypath, Msg: "!include is not allowed in an inline template (import a template directory instead)"}
	}
	if n.Kind != yaml.ScalarNode || strings.TrimSpace(n.Value) == "" {
		return &Error{File: file, Line: n.Line, Path: ypath, Msg: "!include needs a file path"}
	}
	l.includes++
	if l.includes > maxIncludes {
		return &Error{File: file, Line: n.Line, Path: ypath, Msg: fmt.Sprintf("more than %d includes in one template", maxIncludes)}
	}
	data, name, real, err := l.readFile(dir, strings.TrimSpace(n.Value), file, n)
	if err != nil {
		return fail(err)
	}
	if len(chain) > MaxIncludeDepth {
		return &Error{File: file, Line: n.Line, Path: ypath, Msg: fmt.Sprintf("includes nest deeper than %d: %s -> %s", MaxIncludeDepth, strings.Join(chain, " -> "), name)}
	}
	for _, seen := range chain {
		if seen == name {
			return &Error{File: file, Line: n.Line, Path: ypath, Msg: "include cycle: " + strings.Join(append(append([]string{}, chain...), name), " -> ")}
		}
	}
	sub, err := l.parse(data, name)
	if err != nil {
		return err
	}
	next := append(append([]string{}, chain...), name)
	if err := l.resolve(sub, name, filepath.Dir(real), next, ypath); err != nil {
		return err
	}
	from := name
	if inner, ok := l.origin[sub]; ok {
		from = inner // the included file was itself a bare !include
	}
	*n = *sub
	l.origin[n] = from
	return nil
}

// readFile reads rel (relative to dir) confined to the org root, with
// symlinks resolved. It returns the content, the file's name relative to
// the root (slash-separated, symlinks resolved) and its real path.
// file/n locate the reference for error messages.
func (l *loader) readFile(dir, rel, file string, n *yaml.Node) ([]byte, string, string, error) {
	line := 0
	if n != nil {
		line = n.Line
	}
	fail := func(format string, args ...any) ([]byte, string, string, error) {
		return nil, "", "", &Error{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	if l.inline {
		return fail("an inline template cannot reference files (%q)", rel)
	}
	if rel == "" {
		return fail("empty file path")
	}
	if strings.ContainsRune(rel, 0) {
		return fail("file path contains a NUL byte")
	}
	if filepath.IsAbs(rel) || strings.HasPrefix(rel, "/") || strings.HasPrefix(rel, `\`) || filepath.VolumeName(rel) != "" {
		return fail("absolute path %q is not allowed; paths are relative to the including file", rel)
	}
	joined := filepath.Join(dir, filepath.FromSlash(rel))
	shown, inside := l.relToRoot(joined)
	if !inside {
		return fail("path %q escapes the org template directory", rel)
	}
	real, err := filepath.EvalSymlinks(joined)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", "", &Error{File: file, Line: line, Msg: fmt.Sprintf("file %q not found", shown), err: errMissing}
		}
		return fail("file %q cannot be read", shown)
	}
	name, inside := l.relToRoot(real)
	if !inside {
		return fail("path %q resolves through a symlink to outside the org template directory", rel)
	}
	f, err := os.Open(real)
	if err != nil {
		return fail("file %q cannot be read", shown)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return fail("%q is not a regular file", shown)
	}
	max := l.opts.MaxFileSize
	if st.Size() > max {
		return fail("file %q is larger than %d bytes", shown, max)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return fail("file %q cannot be read", shown)
	}
	if int64(len(data)) > max {
		return fail("file %q is larger than %d bytes", shown, max)
	}
	return data, name, real, nil
}

// relToRoot returns p relative to the org root (slash-separated) and
// whether p is inside it. The root itself counts as inside.
func (l *loader) relToRoot(p string) (string, bool) {
	rel, err := filepath.Rel(l.root, p)
	if err != nil {
		return "", false
	}
	if rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	return filepath.ToSlash(rel), true
}
