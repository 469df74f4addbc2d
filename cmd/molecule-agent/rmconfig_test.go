package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestRmConfig(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "keep")
	if err := os.WriteFile(outside, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "skills", "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "skills", "a", "SKILL.md"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := func(k string) string {
		if k == "WORKSPACE_CONFIG_PATH" {
			return dir
		}
		return ""
	}
	cases := []struct {
		path string
		want int
	}{
		{"", 2}, {"/etc/passwd", 2}, {"../keep", 2}, {"a/../../keep", 2}, {"x\x00y", 2}, {".", 2}, {"./", 2},
		{"missing.md", 3},
		{"skills", 0},
		{"skills", 3},
	}
	for _, c := range cases {
		if got := rmConfig(env, c.path, io.Discard); got != c.want {
			t.Errorf("rmConfig(%q) = %d, want %d", c.path, got, c.want)
		}
	}
	if _, err := os.Stat(outside); err != nil {
		t.Fatalf("file outside the config dir was touched: %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("config dir itself removed: %v", err)
	}
}
