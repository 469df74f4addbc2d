package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// rmConfig removes rel (a path relative to the config directory, never
// escaping it, never the directory itself) recursively. Exit codes: 0
// removed, 3 not found, 2 bad path, 1 failure.
func rmConfig(getenv func(string) string, rel string, stderr io.Writer) int {
	dir := getenv("WORKSPACE_CONFIG_PATH")
	if dir == "" {
		dir = "/configs"
	}
	if rel == "" || strings.ContainsRune(rel, 0) || strings.HasPrefix(rel, "/") || strings.Contains(rel, `\`) {
		fmt.Fprintln(stderr, "rm-config: path must be relative")
		return 2
	}
	for _, seg := range strings.Split(rel, "/") {
		if seg == ".." {
			fmt.Fprintln(stderr, "rm-config: path must stay inside the config directory")
			return 2
		}
	}
	clean := path.Clean("/" + rel)[1:]
	if clean == "" {
		fmt.Fprintln(stderr, "rm-config: refusing to remove the config directory itself")
		return 2
	}
	target := filepath.Join(dir, filepath.FromSlash(clean))
	if _, err := os.Lstat(target); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 3
		}
		fmt.Fprintln(stderr, "rm-config:", err)
		return 1
	}
	if err := os.RemoveAll(target); err != nil {
		fmt.Fprintln(stderr, "rm-config:", err)
		return 1
	}
	return 0
}
