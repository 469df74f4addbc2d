package plugins

import (
	"context"
	"github.com/moleculesai/molecule/internal/testutil"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestParseSource(t *testing.T) {
	sha := strings.Repeat("ab", 20)
	good := map[string]string{
		"local://hello-tools":                         "local://hello-tools",
		"github://acme/tools#" + sha:                  "github://acme/tools#" + sha,
		"github://acme/tools.git#" + sha:              "github://acme/tools#" + sha,
		"github://acme/tools#" + strings.ToUpper(sha): "github://acme/tools#" + sha,
	}
	for in, want := range good {
		s, err := ParseSource(in)
		if err != nil || s.String() != want {
			t.Errorf("ParseSource(%q) = %q, %v; want %q", in, s.String(), err, want)
		}
	}
	bad := []string{
		"", "hello", "local://", "local://../etc", "local://a/b", "local://UPPER", "local://a\x00b",
		"github://acme/tools", "github://acme/tools#main", "github://acme/tools#" + sha[:39],
		"github://acme#" + sha, "github://../x#" + sha, "github://acme/..#" + sha, "github://acme/-x#" + sha,
		"github://-acme/x#" + sha, "https://github.com/acme/tools", "file:///etc/passwd",
		"github://acme/tools#" + strings.Repeat("g", 40),
	}
	for _, in := range bad {
		if _, err := ParseSource(in); KindOf(err) != KindInvalid {
			t.Errorf("ParseSource(%q) = %v, want an invalid-source error", in, err)
		}
	}
}

func TestParseManifest(t *testing.T) {
	m, err := ParseManifest([]byte("name: hello\nversion: 1.0.0\nskills: [greet]\nruntimes: [molecule-agent]\nextra: ignored\n"))
	if err != nil || m.Name != "hello" || m.Version != "1.0.0" || len(m.Skills) != 1 || !m.SupportsRuntime("molecule-agent") || m.SupportsRuntime("other") {
		t.Fatalf("manifest = %+v, %v", m, err)
	}
	for _, in := range []string{
		"", "version: 1", "name: ../x", "name: [a]", "name: ok\nskills: [\"\"]", "name: Bad Name",
		"name: ok\nversion: \"" + strings.Repeat("v", 65) + "\"", ":\n-", "name: ok\nskills: notalist",
		strings.Repeat("#", maxManifestSize+1),
	} {
		if _, err := ParseManifest([]byte(in)); KindOf(err) != KindInvalid {
			t.Errorf("ParseManifest(%q) = %v, want invalid", in, err)
		}
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestStageLocalDropsSymlinksAndSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "evil")
	writeFile(t, filepath.Join(root, "plugin.yaml"), "name: evil\nversion: \"1\"\n")
	writeFile(t, filepath.Join(root, "skills", "a.md"), "skill a")
	if err := os.Symlink("/etc/passwd", filepath.Join(root, "passwd")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(root, "skills", "etc")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := &Stager{PluginsDir: dir}
	s, err := st.Stage(context.Background(), Source{Kind: SourceLocal, Name: "evil"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if strings.Join(s.Files, ",") != "plugin.yaml,skills/a.md" {
		t.Fatalf("files = %v", s.Files)
	}
	if strings.Join(s.Dropped, ",") != "passwd,pipe,skills/etc" {
		t.Fatalf("dropped = %v", s.Dropped)
	}
	files, err := s.ReadFiles()
	if err != nil || string(files["skills/a.md"]) != "skill a" {
		t.Fatalf("files = %v, %v", files, err)
	}
	for p, data := range files {
		if strings.Contains(string(data), "root:") {
			t.Fatalf("%s carries /etc/passwd content", p)
		}
	}
	// The digest is stable and depends on content.
	s2, err := st.Stage(context.Background(), Source{Kind: SourceLocal, Name: "evil"})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.Digest != s.Digest || len(s.Digest) != 64 {
		t.Fatalf("digest unstable: %s vs %s", s.Digest, s2.Digest)
	}
	writeFile(t, filepath.Join(root, "skills", "a.md"), "skill A")
	s3, err := st.Stage(context.Background(), Source{Kind: SourceLocal, Name: "evil"})
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if s3.Digest == s.Digest {
		t.Fatal("digest did not change with content")
	}
	// The staging directory goes away on Close.
	s.Close()
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Fatalf("staging dir still there: %v", err)
	}
}

func TestStageLocalErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "nomanifest", "x.md"), "x")
	writeFile(t, filepath.Join(dir, "mismatch", "plugin.yaml"), "name: other\n")
	writeFile(t, filepath.Join(dir, "big", "plugin.yaml"), "name: big\n")
	writeFile(t, filepath.Join(dir, "big", "blob"), strings.Repeat("x", 2048))
	writeFile(t, filepath.Join(dir, "many", "plugin.yaml"), "name: many\n")
	for i := 0; i < 5; i++ {
		writeFile(t, filepath.Join(dir, "many", "f", string(rune('a'+i))), "x")
	}
	writeFile(t, filepath.Join(dir, "real", "plugin.yaml"), "name: linked\n")
	if err := os.Symlink(filepath.Join(dir, "real"), filepath.Join(dir, "linked")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "linkedmanifest", "real.yaml"), "name: linkedmanifest\n")
	if err := os.Symlink("real.yaml", filepath.Join(dir, "linkedmanifest", "plugin.yaml")); err != nil {
		t.Fatal(err)
	}
	st := &Stager{PluginsDir: dir, Limits: Limits{MaxFiles: 4, MaxBytes: 1 << 20, MaxFileBytes: 1024, Timeout: 10e9}}
	cases := map[string]Kind{
		"missing": KindNotFound, "linked": KindNotFound, "nomanifest": KindInvalid, "mismatch": KindInvalid,
		"big": KindTooLarge, "many": KindTooLarge, "linkedmanifest": KindInvalid,
	}
	for name, want := range cases {
		s, err := st.Stage(context.Background(), Source{Kind: SourceLocal, Name: name})
		if KindOf(err) != want {
			t.Errorf("%s: err = %v, want kind %d", name, err, want)
		}
		if s != nil {
			s.Close()
		}
	}
}

func TestStageGitPinnedCommit(t *testing.T) {
	base, first, second := testutil.GitPluginRepo(t)
	st := &Stager{GitBaseURL: base}
	for commit, want := range map[string]string{first: "v1", second: "v2"} {
		s, err := st.Stage(context.Background(), Source{Kind: SourceGitHub, Owner: "acme", Repo: "tools", Commit: commit})
		if err != nil {
			t.Fatal(err)
		}
		files, err := s.ReadFiles()
		if err != nil {
			t.Fatal(err)
		}
		if string(files["skills/s.md"]) != want || s.Manifest.Name != "remote-tools" {
			t.Errorf("commit %s: skills/s.md = %q, manifest %+v", commit, files["skills/s.md"], s.Manifest)
		}
		if _, ok := files["passwd"]; ok || strings.Join(s.Dropped, ",") != "passwd" {
			t.Errorf("symlink not dropped: files %v dropped %v", s.Files, s.Dropped)
		}
		s.Close()
	}
	_, err := st.Stage(context.Background(), Source{Kind: SourceGitHub, Owner: "acme", Repo: "tools", Commit: strings.Repeat("1", 40)})
	if k := KindOf(err); k != KindNotFound && k != KindFetch {
		t.Errorf("unknown commit: %v", err)
	}
	_, err = st.Stage(context.Background(), Source{Kind: SourceGitHub, Owner: "acme", Repo: "nope", Commit: first})
	if KindOf(err) != KindFetch || strings.Contains(err.(*Error).Msg, base) {
		t.Errorf("missing repo: %v", err)
	}
}

// The plugins shipped at the repository root are valid and stage cleanly.
func TestShippedPlugins(t *testing.T) {
	list, err := List("../../plugins")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) < 2 {
		t.Fatalf("%d shipped plugins", len(list))
	}
	st := &Stager{PluginsDir: "../../plugins"}
	for _, e := range list {
		if e.Error != "" || e.Version == "" || len(e.Skills) == 0 {
			t.Errorf("%s: %+v", e.Name, e)
			continue
		}
		s, err := st.Stage(context.Background(), Source{Kind: SourceLocal, Name: e.Name})
		if err != nil {
			t.Errorf("%s: %v", e.Name, err)
			continue
		}
		if len(s.Dropped) != 0 || len(s.Files) < 2 {
			t.Errorf("%s: files %v dropped %v", e.Name, s.Files, s.Dropped)
		}
		s.Close()
	}
}
