package api

import (
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"

	"github.com/moleculesai/molecule/internal/orgtemplate"
)

// Caps on the role files one imported workspace receives.
const (
	maxRoleFiles = 200
	maxRoleBytes = 2 << 20
)

// roleFiles is what an imported workspace gets in /configs before its
// agent starts: system-prompt.md, the org's initial/idle prompts, and the
// regular files of its files_dir (prompts/…), read without following
// symlinks. The provisioner writes config.yaml itself.
func roleFiles(org *orgtemplate.Org, n *orgtemplate.Node) map[string][]byte {
	files := map[string][]byte{}
	if org.Root != "" && n.FilesDir != "" {
		total := 0
		copyRoleDir(filepath.Join(org.Root, filepath.FromSlash(n.FilesDir)), "", 0, files, &total)
		// The role's own workspace.yaml is template source, not agent config.
		delete(files, "workspace.yaml")
	}
	if n.SystemPrompt != "" {
		files["system-prompt.md"] = []byte(n.SystemPrompt)
	}
	if org.Defaults.InitialPrompt != "" {
		files["initial-prompt.md"] = []byte(org.Defaults.InitialPrompt)
	}
	if org.Defaults.IdlePrompt != "" {
		files["idle-prompt.md"] = []byte(org.Defaults.IdlePrompt)
	}
	return files
}

func copyRoleDir(dir, rel string, depth int, out map[string][]byte, total *int) {
	if depth > 8 {
		return
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if len(out) >= maxRoleFiles || e.Name()[0] == '.' {
			continue
		}
		p := path.Join(rel, e.Name())
		full := filepath.Join(dir, e.Name())
		switch t := e.Type(); {
		case t.IsDir():
			copyRoleDir(full, p, depth+1, out, total)
		case t.IsRegular():
			data, ok := readRegular(full, maxRoleBytes-*total)
			if ok {
				out[p] = data
				*total += len(data)
			}
		}
		// Symlinks and special files are skipped.
	}
}

func readRegular(p string, budget int) ([]byte, bool) {
	if budget <= 0 {
		return nil, false
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Mode().Type() != fs.FileMode(0) {
		return nil, false
	}
	data, err := io.ReadAll(io.LimitReader(f, int64(budget)+1))
	if err != nil || len(data) > budget {
		return nil, false
	}
	return data, true
}
