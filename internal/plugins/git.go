package plugins

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// repoURL is where a github:// source is fetched from.
func (st *Stager) repoURL(src Source) string {
	base := strings.TrimRight(st.GitBaseURL, "/")
	if base == "" {
		base = "https://github.com"
	}
	return base + "/" + src.Owner + "/" + src.Repo + ".git"
}

// stageGit fetches exactly the pinned commit into a bare repository and
// copies its blobs out of the object database. Nothing is ever checked
// out, so a symlink in the tree never exists on disk; it is dropped, as
// are submodules.
func (st *Stager) stageGit(ctx context.Context, w *writer, tmp string, src Source) error {
	repo := filepath.Join(tmp, "repo.git")
	g := &gitRunner{dir: repo, home: tmp}
	if _, err := g.run(ctx, nil, "init", "-q", "--bare", repo); err != nil {
		return g.fail(ctx, w, "could not prepare a git repository", err)
	}
	url := st.repoURL(src)
	// Fetch by commit id first (GitHub allows it); fall back to fetching
	// all branches and tags for servers that only serve advertised refs.
	if _, err := g.run(ctx, nil, "fetch", "-q", "--no-tags", "--depth=1", url, src.Commit); err != nil {
		if ctx.Err() != nil {
			return timeoutErr(w.lim)
		}
		if _, err := g.run(ctx, nil, "fetch", "-q", "--no-tags", url, "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"); err != nil {
			return g.fail(ctx, w, "could not fetch "+src.Owner+"/"+src.Repo, err)
		}
	}
	if _, err := g.run(ctx, nil, "cat-file", "-e", src.Commit+"^{commit}"); err != nil {
		if ctx.Err() != nil {
			return timeoutErr(w.lim)
		}
		return &Error{Kind: KindNotFound, Msg: fmt.Sprintf("commit %s not found in %s/%s", src.Commit, src.Owner, src.Repo), Err: err}
	}
	out, err := g.run(ctx, nil, "ls-tree", "-r", "-z", "-l", "--full-tree", src.Commit)
	if err != nil {
		return g.fail(ctx, w, "could not read the commit's tree", err)
	}
	for _, rec := range bytes.Split(out, []byte{0}) {
		if len(rec) == 0 {
			continue
		}
		meta, p, ok := strings.Cut(string(rec), "\t")
		f := strings.Fields(meta)
		if !ok || len(f) != 4 {
			return &Error{Kind: KindFetch, Msg: "could not read the commit's tree", Err: fmt.Errorf("unexpected ls-tree line")}
		}
		mode, typ, oid := f[0], f[1], f[2]
		if err := checkPath(p); err != nil {
			return err
		}
		if strings.HasPrefix(p, ".git/") || strings.Contains(p, "/.git/") {
			continue
		}
		if typ != "blob" || (mode != "100644" && mode != "100755") {
			// 120000 symlink, 160000 submodule: never staged.
			w.s.Dropped = append(w.s.Dropped, p)
			continue
		}
		size, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil {
			return &Error{Kind: KindFetch, Msg: "could not read the commit's tree", Err: err}
		}
		if size > w.lim.MaxFileBytes {
			return &Error{Kind: KindTooLarge, Msg: fmt.Sprintf("plugin file %q is larger than %d bytes", p, w.lim.MaxFileBytes)}
		}
		if w.s.Bytes+size > w.lim.MaxBytes {
			return &Error{Kind: KindTooLarge, Msg: fmt.Sprintf("the plugin is larger than %d bytes", w.lim.MaxBytes)}
		}
		blob, err := g.run(ctx, nil, "cat-file", "blob", oid)
		if err != nil {
			return g.fail(ctx, w, "could not read the commit's files", err)
		}
		var fm fs.FileMode = 0o644
		if mode == "100755" {
			fm = 0o755
		}
		if err := w.add(p, fm, bytes.NewReader(blob)); err != nil {
			return err
		}
	}
	return nil
}

// gitRunner runs git with an environment that cannot prompt, read the
// host's or user's git configuration, or use credentials.
type gitRunner struct {
	dir  string
	home string
}

func (g *gitRunner) run(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	full := append([]string{"-c", "core.symlinks=false", "-c", "credential.helper=", "-c", "protocol.ext.allow=never"}, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	if _, err := os.Stat(g.dir); err == nil {
		cmd.Dir = g.dir
	}
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + g.home,
		"GIT_TERMINAL_PROMPT=0",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_ASKPASS=/bin/false",
		"SSH_ASKPASS=/bin/false",
		"LC_ALL=C",
	}
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		// git's stderr may hold URLs or paths: it goes to the log, never
		// to a client.
		return nil, fmt.Errorf("git %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func (g *gitRunner) fail(ctx context.Context, w *writer, msg string, err error) error {
	if ctx.Err() != nil {
		return timeoutErr(w.lim)
	}
	return &Error{Kind: KindFetch, Msg: msg, Err: err}
}
