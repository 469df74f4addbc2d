package provisioner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/orgtemplate"
	"github.com/moleculesai/molecule/internal/store"
)

// Limits on files copied from a template into a config volume.
const (
	MaxTemplateFiles    = 200
	MaxTemplateFileSize = 1 << 20
)

// ErrNoTemplateMatch means no org template has a workspace whose role or
// name matches the workspace (rebuild_config). It wraps store.ErrNotFound,
// which the API answers with 404.
var ErrNoTemplateMatch = fmt.Errorf("no org template has a workspace with this workspace's role or name: %w", store.ErrNotFound)

// RebuildConfig prepares `restart {rebuild_config: true}` (§2): it finds
// the org template node matching the workspace (role first, then name, in
// template directory order) and marks the workspace so that its next
// provisioning overwrites /configs' config.yaml, system-prompt.md and the
// node's files with the template's. It does no backend work itself (the
// caller then provisions). ErrNoTemplateMatch when nothing matches.
//
// It implements the API's ConfigRebuilder; it is idempotent (a second call
// before the provisioning is the same mark).
func (m *Manager) RebuildConfig(_ context.Context, ws *store.Workspace) error {
	if _, _, err := m.findOrgNode(ws); err != nil {
		return err
	}
	m.mu.Lock()
	if m.rebuild == nil {
		m.rebuild = map[uuid.UUID]bool{}
	}
	m.rebuild[ws.ID] = true
	m.mu.Unlock()
	return nil
}

// takeRebuild consumes the rebuild mark.
func (m *Manager) takeRebuild(wsID uuid.UUID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.rebuild[wsID]
	delete(m.rebuild, wsID)
	return r
}

// findOrgNode finds the org template node for ws: the node an org import
// created it from when that template directory still has it (provenance
// recorded by the import), else the first node under cfg.OrgTemplatesDir
// whose role matches, else one whose name matches.
func (m *Manager) findOrgNode(ws *store.Workspace) (*orgtemplate.Org, *orgtemplate.Node, error) {
	if m.o.OrgTemplatesDir == "" {
		return nil, nil, ErrNoTemplateMatch
	}
	if tmpl, node, err := m.o.Store.OrgNodeOf(context.Background(), ws.ID); err == nil && node != "" {
		if dir, ok := strings.CutPrefix(tmpl, "dir:"); ok {
			if root, err := orgtemplate.ResolveDir(m.o.OrgTemplatesDir, dir); err == nil {
				if org, err := orgtemplate.LoadDir(root, orgtemplate.Options{AllowedEnv: []string{}}); err == nil {
					var found *orgtemplate.Node
					_ = org.Walk(func(_ string, n *orgtemplate.Node, _ *orgtemplate.Node) error {
						if n.Name == node {
							found = n
							return errStopWalk
						}
						return nil
					})
					if found != nil {
						return org, found, nil
					}
				}
			}
		}
	}
	entries, err := os.ReadDir(m.o.OrgTemplatesDir)
	if err != nil {
		return nil, nil, ErrNoTemplateMatch
	}
	var byName *orgtemplate.Node
	var byNameOrg *orgtemplate.Org
	role, name := strings.TrimSpace(ws.Role), strings.TrimSpace(ws.Name)
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		org, err := orgtemplate.LoadDir(filepath.Join(m.o.OrgTemplatesDir, e.Name()), orgtemplate.Options{AllowedEnv: []string{}})
		if err != nil {
			continue
		}
		var found *orgtemplate.Node
		_ = org.Walk(func(_ string, n *orgtemplate.Node, _ *orgtemplate.Node) error {
			if role != "" && strings.EqualFold(n.Role, role) {
				found = n
				return errStopWalk
			}
			if byName == nil && name != "" && strings.EqualFold(n.Name, name) {
				byName, byNameOrg = n, org
			}
			return nil
		})
		if found != nil {
			return org, found, nil
		}
	}
	if byName != nil {
		return byNameOrg, byName, nil
	}
	return nil, nil, ErrNoTemplateMatch
}

var errStopWalk = errors.New("stop")

// configFiles returns the files to write before the agent starts (besides
// .auth_token). A volume that already holds config.yaml keeps its files
// (operators edit them through the files API) unless a rebuild was asked.
// Otherwise the workspace's template (§13) or a generated config seeds it.
func (m *Manager) configFiles(ctx context.Context, ws *store.Workspace) (map[string][]byte, error) {
	files := map[string][]byte{}
	if m.takeRebuild(ws.ID) {
		org, node, err := m.findOrgNode(ws)
		if err == nil {
			return m.orgNodeFiles(org, node, ws)
		}
		m.log.Warn("rebuild_config: no matching org template any more; keeping the volume", "workspace_id", ws.ID)
	}
	_, err := m.o.Backend.ReadFile(ctx, ws.ID, "config.yaml")
	switch {
	case err == nil:
		return files, nil
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrUnsupported):
	default:
		return nil, err
	}
	if ws.Template != "" {
		dir, ok := templateDir(m.o.TemplatesDir, ws.Template)
		if ok {
			tf, err := ReadTree(dir)
			if err == nil {
				for k, v := range tf {
					files[k] = v
				}
			} else {
				m.log.Warn("workspace template unreadable; generating a config", "template", ws.Template, "err", err)
			}
		}
	}
	if _, ok := files["config.yaml"]; !ok {
		files["config.yaml"] = ConfigDoc{Name: ws.Name, Role: ws.Role, Runtime: ws.Runtime, Tier: ws.Tier, Template: ws.Template}.YAML()
	}
	if _, ok := files["system-prompt.md"]; !ok {
		files["system-prompt.md"] = []byte(DefaultSystemPrompt(ws.Name, ws.Role))
	}
	return files, nil
}

// orgNodeFiles is the config regenerated from an org template node.
func (m *Manager) orgNodeFiles(org *orgtemplate.Org, n *orgtemplate.Node, ws *store.Workspace) (map[string][]byte, error) {
	files := map[string][]byte{}
	if n.FilesDir != "" && org.Root != "" {
		tf, err := ReadTree(filepath.Join(org.Root, filepath.FromSlash(n.FilesDir)))
		if err != nil {
			return nil, err
		}
		for k, v := range tf {
			files[k] = v
		}
		// The role's workspace.yaml is template source, not agent config
		// (as in the org import).
		delete(files, "workspace.yaml")
	}
	if org.Defaults.InitialPrompt != "" {
		files["initial-prompt.md"] = []byte(org.Defaults.InitialPrompt)
	}
	if org.Defaults.IdlePrompt != "" {
		files["idle-prompt.md"] = []byte(org.Defaults.IdlePrompt)
	}
	prompt := n.SystemPrompt
	if prompt == "" {
		prompt = DefaultSystemPrompt(ws.Name, ws.Role)
	}
	files["system-prompt.md"] = []byte(prompt)
	files["config.yaml"] = ConfigDoc{Name: ws.Name, Role: ws.Role, Runtime: ws.Runtime, Tier: ws.Tier,
		Model: n.Model, Template: org.Name}.YAML()
	return files, nil
}

// templateDir resolves a workspace template name under root; names are
// single path components.
func templateDir(root, name string) (string, bool) {
	if err := ValidTemplateName(name); err != nil || root == "" {
		return "", false
	}
	return filepath.Join(root, name), true
}

// ValidTemplateName accepts 1..128 characters of letters, digits, '-', '_'
// and '.', not starting with '.'.
func ValidTemplateName(name string) error {
	if name == "" || len(name) > 128 || name[0] == '.' {
		return errors.New("template name must be 1..128 letters, digits, '-', '_' or '.' and not start with '.'")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return errors.New("template name must be 1..128 letters, digits, '-', '_' or '.' and not start with '.'")
		}
	}
	return nil
}

// ReadTree reads every regular file under dir (symlinks and special files
// skipped), keyed by slash-separated relative path; more than
// MaxTemplateFiles files or a file over MaxTemplateFileSize is an error.
func ReadTree(dir string) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if len(out) >= MaxTemplateFiles {
			return fmt.Errorf("more than %d files", MaxTemplateFiles)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Size() > MaxTemplateFileSize {
			return fmt.Errorf("%s is larger than %d bytes", rel, MaxTemplateFileSize)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = b
		return nil
	})
	return out, err
}

// CleanRelPath confines a client path to the config volume: it must be
// relative, free of NUL and "..", and is returned cleaned and
// slash-separated ("" for the root). ok is false for anything else.
func CleanRelPath(p string) (string, bool) {
	if strings.ContainsRune(p, 0) || strings.Contains(p, `\`) {
		return "", false
	}
	if strings.HasPrefix(p, "/") {
		return "", false
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return "", false
		}
	}
	c := path.Clean("/" + p)[1:]
	return c, true
}

// SortedKeys returns m's keys sorted.
func SortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
