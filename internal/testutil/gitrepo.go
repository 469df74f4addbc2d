package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// GitPluginRepo serves the plugin source github://acme/tools from a local
// bare repository and returns its file:// base URL (for
// MOLECULE_PLUGIN_GIT_BASE_URL) and two commits: skills/s.md holds "v1" in
// the first and "v2" in the second. The tree also carries a symlink
// "passwd" → /etc/passwd, which staging must never follow or deliver.
func GitPluginRepo(t testing.TB) (base, first, second string) {
	t.Helper()
	NeedCommand(t, "git")
	dir := t.TempDir()
	work := filepath.Join(dir, "work")
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t", "GIT_CONFIG_GLOBAL=/dev/null")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(work, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("plugin.yaml", "name: remote-tools\nversion: 1.0.0\n")
	write("skills/s.md", "v1")
	run("init", "-q")
	if err := os.Symlink("/etc/passwd", filepath.Join(work, "passwd")); err != nil {
		t.Fatal(err)
	}
	run("add", "-A")
	run("commit", "-qm", "one")
	first = run("rev-parse", "HEAD")
	write("skills/s.md", "v2")
	run("commit", "-qam", "two")
	second = run("rev-parse", "HEAD")
	bare := filepath.Join(dir, "srv", "acme", "tools.git")
	if out, err := exec.Command("git", "clone", "-q", "--bare", work, bare).CombinedOutput(); err != nil {
		t.Fatalf("clone: %v %s", err, out)
	}
	return "file://" + filepath.Join(dir, "srv"), first, second
}
