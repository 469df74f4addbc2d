// Package gitcred makes the agent binary a git credential helper
// (gitcredentials(7)): "get" answers github.com with the workspace's GitHub
// App installation token fetched from the platform; on any failure it prints
// nothing, so git falls through to its next helper or prompts.
package gitcred

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moleculesai/molecule/cmd/molecule-agent/internal/platform"
)

// DefaultTimeout bounds the platform call: git waits on us synchronously.
const DefaultTimeout = 5 * time.Second

// HelperCommand is what git runs (it appends " get" / " store" / " erase").
// The image's binary lives at /molecule-agent.
const HelperCommand = "/molecule-agent git-credential"

// Request is the part of git's credential description we use.
type Request struct {
	Protocol string
	Host     string
}

// ParseRequest reads key=value lines until a blank line or EOF.
func ParseRequest(r io.Reader) Request {
	var req Request
	sc := bufio.NewScanner(io.LimitReader(r, 64<<10))
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			break
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch k {
		case "protocol":
			req.Protocol = v
		case "host":
			req.Host = v
		}
	}
	return req
}

// Hosts is the set of hosts the helper answers for. github.com always;
// GitHub Enterprise hosts may be added by the caller.
type Hosts []string

func (h Hosts) match(host string) bool {
	host = strings.ToLower(host)
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	for _, want := range append([]string{"github.com"}, h...) {
		if want != "" && strings.EqualFold(host, want) {
			return true
		}
	}
	return false
}

// Getter fetches the token; *platform.Client implements it.
type Getter interface {
	GitHubToken(ctx context.Context) (platform.InstallationToken, error)
}

// Run executes one helper action. It writes credentials to out only on
// success and never returns an error for "can't help": git treats a helper's
// non-zero exit as noise, and an empty answer as "ask the next helper".
// A nil getter (platform not configured) means "can't help".
func Run(ctx context.Context, action string, in io.Reader, out io.Writer, g Getter, extra Hosts, timeout time.Duration) {
	if action != "get" {
		// store/erase: the platform owns the token's lifecycle. Drain stdin
		// so git does not see a broken pipe.
		_, _ = io.Copy(io.Discard, io.LimitReader(in, 64<<10))
		return
	}
	req := ParseRequest(in)
	if g == nil || !extra.match(req.Host) {
		return
	}
	if req.Protocol != "" && req.Protocol != "https" {
		return
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tok, err := g.GitHubToken(ctx)
	if err != nil || strings.ContainsAny(tok.Token, "\n\r\x00") {
		return
	}
	var b strings.Builder
	b.WriteString("username=x-access-token\n")
	fmt.Fprintf(&b, "password=%s\n", tok.Token)
	if !tok.ExpiresAt.IsZero() {
		// Understood by git ≥ 2.41, ignored by older versions: lets git
		// drop a cached copy when the installation token expires.
		fmt.Fprintf(&b, "password_expiry_utc=%d\n", tok.ExpiresAt.Unix())
	}
	_, _ = io.WriteString(out, b.String())
}

// EnsureGitConfig makes home/.gitconfig name HelperCommand as a credential
// helper. Existing content is kept; if the helper is already configured the
// file is left untouched. Returns the file's path.
func EnsureGitConfig(home string) (string, error) {
	path := filepath.Join(home, ".gitconfig")
	existing, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return "", err
	}
	if strings.Contains(string(existing), HelperCommand) {
		return path, nil
	}
	var b strings.Builder
	b.Write(existing)
	if len(existing) > 0 && !strings.HasSuffix(string(existing), "\n") {
		b.WriteByte('\n')
	}
	b.WriteString("# Added by molecule-agent: GitHub tokens come from the Molecule platform.\n")
	b.WriteString("[credential]\n\thelper = " + HelperCommand + "\n")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return "", err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	return path, nil
}

// PickHome chooses where to write .gitconfig: $HOME if it is a writable
// directory, else the first writable candidate. A scratch image run as a
// user without a passwd entry gets HOME=/ from Docker, which is read-only.
func PickHome(envHome string, candidates ...string) (string, bool) {
	for _, d := range append([]string{envHome}, candidates...) {
		if d == "" {
			continue
		}
		if writable(d) {
			return d, true
		}
	}
	return "", false
}

func writable(dir string) bool {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false
	}
	f, err := os.CreateTemp(dir, ".molecule-write-test-*")
	if err != nil {
		return false
	}
	name := f.Name()
	_ = f.Close()
	_ = os.Remove(name)
	return true
}
