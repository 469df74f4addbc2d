// Package plugins reads plugin manifests, resolves plugin sources and
// stages a plugin's files for delivery (CONTRACT §15).
//
// A plugin is a directory holding plugin.yaml (name, version, description,
// skills, runtimes) and whatever files the agent needs. Sources are
// local://<name> (a directory of the platform's plugins dir) and
// github://owner/repo#<40-hex commit> (fetched with the git CLI from a
// configurable base URL and pinned to that commit).
//
// Staging copies regular files only into a private temporary directory:
// symbolic links are never followed nor copied (they are dropped and
// reported), nor are devices, sockets or git submodules; file count, total
// size, per-file size and time are capped. What is delivered is the staged
// snapshot, never the source.
//
// Digest: a staged plugin's sha256 is computed over its files sorted by
// path, as the concatenation of "<path>\x00<hex sha256 of content>\n" for
// each file (paths slash-separated, relative to the plugin root). Clients
// pin an install by passing the digest the server reported before.
//
// The package is pure apart from reading files and running git; the
// allowlist gate and delivery are the API's job.
package plugins

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// ManifestFile is the manifest at a plugin's root.
const ManifestFile = "plugin.yaml"

// maxManifestSize caps plugin.yaml.
const maxManifestSize = 64 << 10

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidName reports whether s may name a plugin: 1..64 of lower-case
// letters, digits, '.', '_' and '-', starting with a letter or digit. The
// name becomes a directory (/configs/plugins/<name>), so nothing else is
// allowed.
func ValidName(s string) bool { return nameRE.MatchString(s) && s != "." && s != ".." }

// Manifest is plugin.yaml.
type Manifest struct {
	Name        string   `json:"name" yaml:"name"`
	Version     string   `json:"version" yaml:"version"`
	Description string   `json:"description" yaml:"description"`
	Skills      []string `json:"skills" yaml:"skills"`
	Runtimes    []string `json:"runtimes" yaml:"runtimes"`
}

// SupportsRuntime reports whether the plugin runs on runtime; a manifest
// without runtimes supports every runtime.
func (m *Manifest) SupportsRuntime(runtime string) bool {
	if len(m.Runtimes) == 0 {
		return true
	}
	for _, r := range m.Runtimes {
		if r == runtime {
			return true
		}
	}
	return false
}

// ParseManifest decodes and validates plugin.yaml. Errors are *Error of
// KindInvalid with a message meant for the plugin's author.
func ParseManifest(data []byte) (m *Manifest, err error) {
	if len(data) > maxManifestSize {
		return nil, invalidf("%s is larger than %d bytes", ManifestFile, maxManifestSize)
	}
	defer func() {
		// The YAML library has panicked on hostile input before.
		if r := recover(); r != nil {
			m, err = nil, invalidf("%s is not valid YAML", ManifestFile)
		}
	}()
	var out Manifest
	if err := yaml.Unmarshal(data, &out); err != nil {
		return nil, invalidf("%s is not valid: %s", ManifestFile, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if out.Name == "" {
		return nil, invalidf("%s: name is required", ManifestFile)
	}
	if !ValidName(out.Name) {
		return nil, invalidf("%s: name %q must be 1-64 lower-case letters, digits, '.', '_' or '-'", ManifestFile, clip(out.Name))
	}
	if err := checkField("version", out.Version, 64); err != nil {
		return nil, err
	}
	if err := checkField("description", out.Description, 2048); err != nil {
		return nil, err
	}
	for _, list := range []struct {
		name string
		vals []string
	}{{"skills", out.Skills}, {"runtimes", out.Runtimes}} {
		if len(list.vals) > 100 {
			return nil, invalidf("%s: at most 100 %s", ManifestFile, list.name)
		}
		for _, v := range list.vals {
			if v == "" {
				return nil, invalidf("%s: %s may not contain empty names", ManifestFile, list.name)
			}
			if err := checkField(list.name, v, 128); err != nil {
				return nil, err
			}
		}
	}
	if out.Skills == nil {
		out.Skills = []string{}
	}
	if out.Runtimes == nil {
		out.Runtimes = []string{}
	}
	return &out, nil
}

func checkField(field, v string, max int) error {
	if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
		return invalidf("%s: %s must be valid UTF-8 without NUL characters", ManifestFile, field)
	}
	if utf8.RuneCountInString(v) > max {
		return invalidf("%s: %s is longer than %d characters", ManifestFile, field, max)
	}
	return nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// Kind classifies an *Error for the API.
type Kind int

// Error kinds: the API answers 400, 404, 413 and 502 respectively.
const (
	KindInvalid Kind = iota + 1
	KindNotFound
	KindTooLarge
	KindFetch
)

// Error is every error this package returns about a plugin or a source.
// Msg is safe to show a client (it never carries host paths or git
// output); Err, when set, is for the server log only.
type Error struct {
	Kind Kind
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

func invalidf(format string, args ...any) *Error {
	return &Error{Kind: KindInvalid, Msg: fmt.Sprintf(format, args...)}
}

// KindOf returns the Kind of err, or 0 when err is not an *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}
