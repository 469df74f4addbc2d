package artifacts

import (
	"net/url"
	"regexp"
	"strconv"
)

// repoNameRE is the §18 rule. Go's $ matches only at the end of the text,
// so a trailing newline does not slip through.
var repoNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$`)

// ValidRepoName reports whether name is an acceptable explicit repo name:
// 1 to 63 characters of letters, digits, '_' and '-', not starting with '_'
// or '-'.
func ValidRepoName(name string) bool { return repoNameRE.MatchString(name) }

// DefaultRepoName is the repo name used when the caller gives none:
// "molecule-ws-<workspace id>". A UUID id yields a valid 48-character name.
func DefaultRepoName(workspaceID string) string { return "molecule-ws-" + workspaceID }

// maxImportURLLen bounds what we forward; real git remotes are far shorter.
const maxImportURLLen = 2048

// ValidateImportURL accepts only absolute https URLs with a host and no
// user-info. Everything else (http, git, ssh, file, scp-style
// "git@host:path", scheme-less, opaque "https:host", "https://@host",
// "https://user:pass@host", a bare port) is an error wrapping
// ErrInvalidArgument.
//
// The import is fetched by Cloudflare, so the https rule keeps an import from
// reading local files or speaking other protocols on our behalf. User-info
// is refused outright: credentials in an import URL would end up in
// Cloudflare's and our request logs, and "https://trusted.example@evil.example"
// is a classic way to disguise the real host.
func ValidateImportURL(raw string) error {
	if raw == "" {
		return invalid("import_url is empty")
	}
	if len(raw) > maxImportURLLen {
		return invalid("import_url longer than %d bytes", maxImportURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse errors quote the input; keep only the fact.
		return invalid("import_url is not a URL")
	}
	switch {
	case u.Scheme != "https":
		return invalid("import_url must use https, not %q", u.Scheme)
	case u.Opaque != "":
		return invalid("import_url must be https://host/...")
	case u.User != nil:
		return invalid("import_url must not contain user info")
	case u.Hostname() == "":
		return invalid("import_url has no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return invalid("import_url has an invalid port")
		}
	}
	return nil
}

// StripCredentials removes any "user:secret@" from a remote URL so that it
// can be stored or shown. If the URL cannot be parsed it returns "" rather
// than risk keeping a secret.
func StripCredentials(remoteURL string) string {
	if remoteURL == "" {
		return ""
	}
	u, err := url.Parse(remoteURL)
	if err != nil {
		return ""
	}
	if u.User == nil {
		return remoteURL
	}
	u.User = nil
	return u.String()
}
