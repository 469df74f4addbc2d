package api

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/moleculesai/molecule/internal/orgtemplate"
	"github.com/moleculesai/molecule/internal/store"
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

// templateRoleFiles regenerates a workspace's role files from the org
// template that made it, for POST /workspaces/:id/restart
// {rebuild_config:true} when its config volume was lost (§2). The
// workspace's recorded template and node are tried first; otherwise every
// template under MOLECULE_ORG_TEMPLATES_DIR is searched for a node whose
// name (then role) matches. ok is false when no template matches.
func (s *Server) templateRoleFiles(ctx context.Context, ws *store.Workspace) (files map[string][]byte, ok bool, err error) {
	tmpl, node, err := s.store.OrgNodeOf(ctx, ws.ID)
	if err != nil {
		return nil, false, err
	}
	var lookupErr error
	opts := s.templateOptions(ctx, &lookupErr)
	match := func(org *orgtemplate.Org, want func(*orgtemplate.Node) bool) map[string][]byte {
		var found map[string][]byte
		org.Walk(func(_ string, n, _ *orgtemplate.Node) error {
			if found == nil && want(n) {
				found = roleFiles(org, n)
			}
			return nil
		})
		return found
	}
	if dir, isDir := strings.CutPrefix(tmpl, "dir:"); isDir && node != "" {
		if root, rerr := orgtemplate.ResolveDir(s.cfg.OrgTemplatesDir, dir); rerr == nil {
			if org, lerr := orgtemplate.LoadDir(root, opts); lerr == nil {
				if f := match(org, func(n *orgtemplate.Node) bool { return n.Name == node }); f != nil {
					return f, true, nil
				}
			}
		}
	}
	entries, err := os.ReadDir(s.cfg.OrgTemplatesDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, lookupErr
		}
		return nil, false, err
	}
	var byRole map[string][]byte
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		org, lerr := orgtemplate.LoadDir(filepath.Join(s.cfg.OrgTemplatesDir, e.Name()), opts)
		if lerr != nil {
			continue
		}
		if f := match(org, func(n *orgtemplate.Node) bool { return n.Name == ws.Name }); f != nil {
			return f, true, nil
		}
		if byRole == nil && ws.Role != "" {
			byRole = match(org, func(n *orgtemplate.Node) bool { return n.Role == ws.Role })
		}
	}
	if lookupErr != nil {
		return nil, false, lookupErr
	}
	return byRole, byRole != nil, nil
}
