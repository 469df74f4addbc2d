package plugins

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Entry is a plugin of the local registry (GET /plugins). A directory
// whose manifest is broken is still listed, with Error set, so an operator
// sees why it cannot be installed.
type Entry struct {
	Manifest
	Source string `json:"source"`
	Error  string `json:"error,omitempty"`
}

// List reads every plugin directory of pluginsDir, sorted by name. Hidden
// entries, symlinks and directories whose name is not a valid plugin name
// are skipped. A missing pluginsDir is an empty registry.
func List(pluginsDir string) ([]Entry, error) {
	entries, err := os.ReadDir(pluginsDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return []Entry{}, nil
		}
		return nil, err
	}
	out := []Entry{}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !e.IsDir() || !ValidName(name) {
			continue
		}
		ent := Entry{Manifest: Manifest{Name: name, Skills: []string{}, Runtimes: []string{}}, Source: "local://" + name}
		m, err := readManifest(filepath.Join(pluginsDir, name, ManifestFile))
		switch {
		case err != nil:
			ent.Error = err.Error()
		case m.Name != name:
			ent.Error = ManifestFile + " names the plugin \"" + m.Name + "\" but it lives in \"" + name + "\""
		default:
			ent.Manifest = *m
		}
		out = append(out, ent)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func readManifest(p string) (*Manifest, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, invalidf("no readable %s (symlinks are not followed)", ManifestFile)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, invalidf("%s is not a regular file", ManifestFile)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err != nil {
		return nil, invalidf("%s cannot be read", ManifestFile)
	}
	return ParseManifest(data)
}
