package orgtemplate

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"
)

var (
	orgKeys      = []string{"name", "description", "defaults", "workspaces"}
	defaultsKeys = []string{"runtime", "tier", "model", "plugins", "initial_prompt", "initial_prompt_file", "idle_prompt", "idle_prompt_file"}
	nodeKeys     = []string{"name", "role", "runtime", "tier", "model", "system_prompt", "system_prompt_file",
		"files_dir", "workspace_dir", "workspace_access", "plugins", "schedules", "channels", "budget_limit",
		"external", "url", "canvas", "children"}
	scheduleKeys = []string{"name", "cron_expr", "timezone", "prompt", "prompt_file", "enabled"}
	channelKeys  = []string{"type", "config", "enabled"}
	canvasKeys   = []string{"x", "y"}
)

// cronParser accepts exactly the five standard fields; descriptors such as
// @daily and a TZ= prefix are refused (the timezone has its own field).
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

const maxNameLen = 128

func (l *loader) decodeOrg(n *yaml.Node, file string) (*Org, error) {
	fs, err := l.fields(at{file: file}, n, orgKeys...)
	if err != nil {
		return nil, err
	}
	org := &Org{}
	if org.Name, err = l.requiredName(fs, "name", at{file: file}, n); err != nil {
		return nil, err
	}
	if f, ok := fs["description"]; ok {
		if org.Description, err = l.str(f); err != nil {
			return nil, err
		}
	}
	if f, ok := fs["defaults"]; ok {
		if org.Defaults, err = l.decodeDefaults(f); err != nil {
			return nil, err
		}
	}
	f, ok := fs["workspaces"]
	if !ok {
		return nil, l.errAt(at{file: file}, n, "workspaces: at least one workspace is required")
	}
	a, items, err := l.seq(f)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, l.errAt(a, f.val, "at least one workspace is required")
	}
	for i, item := range items {
		node, err := l.decodeNode(at{a.file, indexPath("workspaces", i)}, item, &org.Defaults)
		if err != nil {
			return nil, err
		}
		org.Workspaces = append(org.Workspaces, node)
	}
	return org, nil
}

func (l *loader) decodeDefaults(f field) (Defaults, error) {
	var d Defaults
	fs, err := l.fields(f.at, f.val, defaultsKeys...)
	if err != nil {
		return d, err
	}
	if g, ok := fs["runtime"]; ok {
		if d.Runtime, err = l.runtime(g); err != nil {
			return d, err
		}
	}
	if g, ok := fs["tier"]; ok {
		if d.Tier, err = l.tier(g); err != nil {
			return d, err
		}
	}
	if g, ok := fs["model"]; ok {
		if d.Model, err = l.str(g); err != nil {
			return d, err
		}
	}
	if g, ok := fs["plugins"]; ok {
		if d.Plugins, err = l.plugins(g, nil); err != nil {
			return d, err
		}
	}
	if d.InitialPrompt, err = l.prompt(fs, "initial_prompt", ""); err != nil {
		return d, err
	}
	if d.IdlePrompt, err = l.prompt(fs, "idle_prompt", ""); err != nil {
		return d, err
	}
	return d, nil
}

func (l *loader) decodeNode(a at, n *yaml.Node, defs *Defaults) (Node, error) {
	var node Node
	a, n, err := l.enter(a, n)
	if err != nil {
		return node, err
	}
	fs, err := l.fields(a, n, nodeKeys...)
	if err != nil {
		return node, err
	}
	l.count++
	if l.count > MaxWorkspaces {
		return node, l.errAt(a, n, "a template may define at most %d workspaces", MaxWorkspaces)
	}
	if node.Name, err = l.requiredName(fs, "name", a, n); err != nil {
		return node, err
	}
	if first, dup := l.names[node.Name]; dup {
		return node, l.errAt(fs["name"].at, fs["name"].val, "duplicate workspace name %q (also at %s)", node.Name, first)
	}
	l.names[node.Name] = a.path

	if f, ok := fs["role"]; ok {
		if node.Role, err = l.str(f); err != nil {
			return node, err
		}
		if utf8.RuneCountInString(node.Role) > maxNameLen {
			return node, l.errAt(f.at, f.val, "role is longer than %d characters", maxNameLen)
		}
	}
	node.Runtime, node.Tier, node.Model = defs.Runtime, defs.Tier, defs.Model
	if f, ok := fs["runtime"]; ok {
		if node.Runtime, err = l.runtime(f); err != nil {
			return node, err
		}
	}
	if node.Runtime == "" {
		node.Runtime = DefaultRuntime
	}
	if f, ok := fs["tier"]; ok {
		if node.Tier, err = l.tier(f); err != nil {
			return node, err
		}
	}
	if node.Tier == 0 {
		node.Tier = DefaultTier
	}
	if f, ok := fs["model"]; ok {
		if node.Model, err = l.str(f); err != nil {
			return node, err
		}
	}
	if f, ok := fs["files_dir"]; ok {
		if node.FilesDir, err = l.filesDir(f); err != nil {
			return node, err
		}
	}
	if node.SystemPrompt, err = l.prompt(fs, "system_prompt", node.FilesDir); err != nil {
		return node, err
	}
	if err := l.decodeWorkspaceDir(fs, &node); err != nil {
		return node, err
	}
	node.Plugins = append([]string(nil), defs.Plugins...)
	if f, ok := fs["plugins"]; ok {
		if node.Plugins, err = l.plugins(f, node.Plugins); err != nil {
			return node, err
		}
	}
	if err := l.decodeSchedules(fs, &node); err != nil {
		return node, err
	}
	if err := l.decodeChannels(fs, &node); err != nil {
		return node, err
	}
	if f, ok := fs["budget_limit"]; ok {
		if _, v, _ := l.enter(f.at, f.val); !isNull(v) {
			b, err := l.integer(f)
			if err != nil {
				return node, err
			}
			if b < 0 {
				return node, l.errAt(f.at, f.val, "budget_limit must be 0 or more (USD cents)")
			}
			node.BudgetLimit = &b
		}
	}
	if f, ok := fs["external"]; ok {
		if node.External, err = l.boolean(f); err != nil {
			return node, err
		}
	}
	if f, ok := fs["url"]; ok {
		if node.URL, err = l.str(f); err != nil {
			return node, err
		}
		if node.URL != "" {
			u, perr := url.Parse(node.URL)
			if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return node, l.errAt(f.at, f.val, "url must be an absolute http(s) URL")
			}
			if !node.External {
				return node, l.errAt(f.at, f.val, "url is only valid for an external workspace (set external: true)")
			}
		}
	}
	if f, ok := fs["canvas"]; ok {
		if node.Canvas, err = l.canvas(f); err != nil {
			return node, err
		}
	}
	if f, ok := fs["children"]; ok {
		ca, items, err := l.seq(f)
		if err != nil {
			return node, err
		}
		for i, item := range items {
			child, err := l.decodeNode(at{ca.file, joinPath(a.path, indexPath("children", i))}, item, defs)
			if err != nil {
				return node, err
			}
			node.Children = append(node.Children, child)
		}
	}
	return node, nil
}

func (l *loader) requiredName(fs map[string]field, key string, a at, n *yaml.Node) (string, error) {
	f, ok := fs[key]
	if !ok {
		return "", l.errAt(a, n, "%s is required", key)
	}
	s, err := l.str(f)
	if err != nil {
		return "", err
	}
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", l.errAt(f.at, f.val, "%s is required", key)
	case utf8.RuneCountInString(s) > maxNameLen:
		return "", l.errAt(f.at, f.val, "%s is longer than %d characters", key, maxNameLen)
	case strings.ContainsAny(s, "\x00\n\r"):
		return "", l.errAt(f.at, f.val, "%s may not contain control characters", key)
	}
	return s, nil
}

func (l *loader) runtime(f field) (string, error) {
	s, err := l.str(f)
	if err != nil {
		return "", err
	}
	if len(s) > 64 || strings.ContainsAny(s, " \t\n\r\x00/") {
		return "", l.errAt(f.at, f.val, "invalid runtime %q", s)
	}
	return s, nil
}

func (l *loader) tier(f field) (int, error) {
	v, err := l.integer(f)
	if err != nil {
		return 0, err
	}
	if v < 1 || v > 4 {
		return 0, l.errAt(f.at, f.val, "tier must be between 1 and 4, got %d", v)
	}
	return int(v), nil
}

// plugins appends the listed plugin names (or sources) to base, skipping
// ones already present: org defaults come first, then the node's own.
func (l *loader) plugins(f field, base []string) ([]string, error) {
	list, err := l.strList(f)
	if err != nil {
		return nil, err
	}
	out := base
	for i, p := range list {
		p = strings.TrimSpace(p)
		if p == "" || len(p) > 256 || strings.ContainsAny(p, " \t\n\r\x00") {
			return nil, l.errAt(at{f.at.file, f.at.path + fmt.Sprintf("[%d]", i)}, f.val, "invalid plugin %q", p)
		}
		if !contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// prompt reads `<key>` (inline text) or `<key>_file` (a file inside
// filesDir, else the org root). Setting both is an error.
func (l *loader) prompt(fs map[string]field, key, filesDir string) (string, error) {
	text, hasText := fs[key]
	file, hasFile := fs[key+"_file"]
	switch {
	case hasText && hasFile:
		return "", l.errAt(file.at, file.val, "set %s or %s_file, not both", key, key)
	case hasText:
		return l.str(text)
	case hasFile:
		rel, err := l.str(file)
		if err != nil {
			return "", err
		}
		return l.promptFile(file, rel, filesDir)
	}
	return "", nil
}

// promptFile resolves rel inside the node's files_dir first and then the
// org root, both confined to the root with symlinks resolved.
func (l *loader) promptFile(f field, rel, filesDir string) (string, error) {
	_, n, _ := l.enter(f.at, f.val)
	if l.inline {
		return "", l.errAt(f.at, n, "an inline template cannot reference files (%q)", rel)
	}
	var (
		data []byte
		err  error
	)
	if filesDir != "" {
		data, _, _, err = l.readFile(filepath.Join(l.root, filepath.FromSlash(filesDir)), rel, f.at.file, n)
	}
	if filesDir == "" || errors.Is(err, errMissing) {
		data, _, _, err = l.readFile(l.root, rel, f.at.file, n)
		if errors.Is(err, errMissing) && filesDir != "" {
			err = l.errAt(f.at, n, "prompt file %q not found in %s/ or the org root", rel, filesDir)
		}
	}
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Path == "" {
			e.Path = f.at.path
		}
		return "", err
	}
	if !utf8.Valid(data) {
		return "", l.errAt(f.at, n, "prompt file %q is not UTF-8 text", rel)
	}
	return string(data), nil
}

func (l *loader) filesDir(f field) (string, error) {
	rel, err := l.str(f)
	if err != nil || rel == "" {
		return "", err
	}
	if l.inline {
		return "", l.errAt(f.at, f.val, "an inline template cannot reference files (files_dir %q)", rel)
	}
	if strings.ContainsRune(rel, 0) || filepath.IsAbs(rel) || strings.HasPrefix(rel, "/") || strings.HasPrefix(rel, `\`) {
		return "", l.errAt(f.at, f.val, "files_dir %q must be a relative path inside the org template", rel)
	}
	joined := filepath.Join(l.root, filepath.FromSlash(rel))
	if _, ok := l.relToRoot(joined); !ok {
		return "", l.errAt(f.at, f.val, "files_dir %q escapes the org template directory", rel)
	}
	real, err := filepath.EvalSymlinks(joined)
	if err != nil {
		return "", l.errAt(f.at, f.val, "files_dir %q not found", path.Clean(filepath.ToSlash(rel)))
	}
	name, ok := l.relToRoot(real)
	if !ok {
		return "", l.errAt(f.at, f.val, "files_dir %q resolves through a symlink to outside the org template directory", rel)
	}
	if st, err := os.Stat(real); err != nil || !st.IsDir() {
		return "", l.errAt(f.at, f.val, "files_dir %q is not a directory", rel)
	}
	return name, nil
}

func (l *loader) decodeWorkspaceDir(fs map[string]field, node *Node) error {
	if f, ok := fs["workspace_dir"]; ok {
		raw, err := l.str(f)
		if err != nil {
			return err
		}
		dir, err := l.expand(raw)
		if err != nil {
			return l.errAt(f.at, f.val, "%s", err)
		}
		// Checked after expansion; the value itself is never echoed since
		// it may have come from a secret.
		if dir != "" && (!strings.HasPrefix(dir, "/") || strings.ContainsRune(dir, 0)) {
			return l.errAt(f.at, f.val, "workspace_dir must be an absolute host path after expansion")
		}
		node.WorkspaceDir = dir
	}
	if f, ok := fs["workspace_access"]; ok {
		s, err := l.str(f)
		if err != nil {
			return err
		}
		switch s {
		case "none", "read_only", "read_write":
			node.WorkspaceAccess = s
		default:
			return l.errAt(f.at, f.val, "workspace_access must be none, read_only or read_write, got %q", s)
		}
	}
	if node.WorkspaceAccess == "" {
		// Mounting a directory without saying how means the agent works
		// in it; without a directory there is nothing to access.
		node.WorkspaceAccess = "none"
		if node.WorkspaceDir != "" {
			node.WorkspaceAccess = "read_write"
		}
	}
	return nil
}

func (l *loader) decodeSchedules(fs map[string]field, node *Node) error {
	f, ok := fs["schedules"]
	if !ok {
		return nil
	}
	a, items, err := l.seq(f)
	if err != nil {
		return err
	}
	for i, item := range items {
		sa := at{a.file, a.path + fmt.Sprintf("[%d]", i)}
		sf, err := l.fields(sa, item, scheduleKeys...)
		if err != nil {
			return err
		}
		s := Schedule{Timezone: "UTC", Enabled: true}
		if s.Name, err = l.requiredName(sf, "name", sa, item); err != nil {
			return err
		}
		for _, other := range node.Schedules {
			if other.Name == s.Name {
				return l.errAt(sf["name"].at, sf["name"].val, "duplicate schedule name %q in workspace %q", s.Name, node.Name)
			}
		}
		cf, ok := sf["cron_expr"]
		if !ok {
			return l.errAt(sa, item, "cron_expr is required")
		}
		if s.CronExpr, err = l.str(cf); err != nil {
			return err
		}
		s.CronExpr = strings.TrimSpace(s.CronExpr)
		if n := len(strings.Fields(s.CronExpr)); n != 5 {
			return l.errAt(cf.at, cf.val, "cron_expr %q must have 5 fields (minute hour day-of-month month day-of-week), got %d", s.CronExpr, n)
		}
		if _, perr := cronParser.Parse(s.CronExpr); perr != nil {
			return l.errAt(cf.at, cf.val, "invalid cron_expr %q: %s", s.CronExpr, perr)
		}
		if tf, ok := sf["timezone"]; ok {
			tz, err := l.str(tf)
			if err != nil {
				return err
			}
			if tz != "" {
				if _, lerr := time.LoadLocation(tz); lerr != nil || tz == "Local" {
					return l.errAt(tf.at, tf.val, "unknown timezone %q (use an IANA name such as Europe/Berlin)", tz)
				}
				s.Timezone = tz
			}
		}
		if s.Prompt, err = l.prompt(sf, "prompt", node.FilesDir); err != nil {
			return err
		}
		if strings.TrimSpace(s.Prompt) == "" {
			return l.errAt(sa, item, "schedule %q needs a prompt or prompt_file", s.Name)
		}
		if ef, ok := sf["enabled"]; ok {
			if s.Enabled, err = l.boolean(ef); err != nil {
				return err
			}
		}
		node.Schedules = append(node.Schedules, s)
	}
	return nil
}

func (l *loader) decodeChannels(fs map[string]field, node *Node) error {
	f, ok := fs["channels"]
	if !ok {
		return nil
	}
	a, items, err := l.seq(f)
	if err != nil {
		return err
	}
	for i, item := range items {
		ca := at{a.file, a.path + fmt.Sprintf("[%d]", i)}
		cf, err := l.fields(ca, item, channelKeys...)
		if err != nil {
			return err
		}
		ch := Channel{Enabled: true, Config: map[string]any{}}
		tf, ok := cf["type"]
		if !ok {
			return l.errAt(ca, item, "type is required (slack, telegram or webhook)")
		}
		if ch.Type, err = l.str(tf); err != nil {
			return err
		}
		switch ch.Type {
		case "slack", "telegram", "webhook":
		default:
			return l.errAt(tf.at, tf.val, "channel type must be slack, telegram or webhook, got %q", ch.Type)
		}
		if g, ok := cf["config"]; ok {
			v, err := l.anyValue(g.at, g.val)
			if err != nil {
				return err
			}
			switch m := v.(type) {
			case nil:
			case map[string]any:
				ch.Config = m
			default:
				return l.errAt(g.at, g.val, "config must be a mapping")
			}
		}
		if ef, ok := cf["enabled"]; ok {
			if ch.Enabled, err = l.boolean(ef); err != nil {
				return err
			}
		}
		node.Channels = append(node.Channels, ch)
	}
	return nil
}

func (l *loader) canvas(f field) (*Canvas, error) {
	_, v, err := l.enter(f.at, f.val)
	if err != nil || isNull(v) {
		return nil, err
	}
	fs, err := l.fields(f.at, f.val, canvasKeys...)
	if err != nil {
		return nil, err
	}
	c := &Canvas{}
	if g, ok := fs["x"]; ok {
		if c.X, err = l.number(g); err != nil {
			return nil, err
		}
	}
	if g, ok := fs["y"]; ok {
		if c.Y, err = l.number(g); err != nil {
			return nil, err
		}
	}
	return c, nil
}
