package plugins

import (
	"regexp"
	"strings"
)

// Source kinds.
const (
	SourceLocal  = "local"
	SourceGitHub = "github"
)

// Source is a parsed plugin source.
type Source struct {
	Kind string
	// Name is the directory under the plugins dir (local).
	Name string
	// Owner, Repo and Commit name a pinned GitHub commit (github).
	Owner, Repo, Commit string
}

// String is the canonical form, as stored with an installed plugin.
func (s Source) String() string {
	if s.Kind == SourceLocal {
		return "local://" + s.Name
	}
	return "github://" + s.Owner + "/" + s.Repo + "#" + s.Commit
}

var (
	ownerRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,38}$`)
	repoRE   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,100}$`)
	commitRE = regexp.MustCompile(`^[0-9a-f]{40}$`)
)

// ParseSource parses local://<name> or github://owner/repo#<40-hex commit>.
// A GitHub source must be pinned to a full commit id: branches and tags
// move, so they could deliver different code than the one reviewed.
func ParseSource(raw string) (Source, error) {
	switch {
	case strings.HasPrefix(raw, "local://"):
		name := strings.TrimPrefix(raw, "local://")
		if !ValidName(name) {
			return Source{}, invalidf("source local://<name>: %q is not a valid plugin name", clip(name))
		}
		return Source{Kind: SourceLocal, Name: name}, nil
	case strings.HasPrefix(raw, "github://"):
		rest := strings.TrimPrefix(raw, "github://")
		path, commit, ok := strings.Cut(rest, "#")
		if !ok || commit == "" {
			return Source{}, invalidf("source github://owner/repo#<commit> must be pinned to a 40-hex commit id")
		}
		commit = strings.ToLower(commit)
		if !commitRE.MatchString(commit) {
			return Source{}, invalidf("source github://owner/repo#<commit>: the commit must be a full 40-hex commit id (branches and tags are not accepted)")
		}
		owner, repo, ok := strings.Cut(path, "/")
		repo = strings.TrimSuffix(repo, ".git")
		if !ok || !ownerRE.MatchString(owner) || !repoRE.MatchString(repo) || repo == "." || repo == ".." || strings.HasPrefix(repo, "-") {
			return Source{}, invalidf("source github://owner/repo#<commit>: invalid owner or repository name")
		}
		return Source{Kind: SourceGitHub, Owner: owner, Repo: repo, Commit: commit}, nil
	default:
		return Source{}, invalidf("source must be local://<name> or github://owner/repo#<40-hex commit>")
	}
}
