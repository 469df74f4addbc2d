// Package orgtemplate parses org templates (CONTRACT.md §14): an org.yaml
// tree of workspaces, with !include resolution confined to the template's
// root, prompt files, ${VAR} expansion from a strict set of sources, and
// validation of the whole tree before anything is returned.
//
// The package is pure: it reads files and returns a typed tree or a typed
// *Error. Writing rows and provisioning is the import handler's job.
package orgtemplate

// DefaultRuntime and DefaultTier are applied to nodes that set neither
// themselves nor through the org's defaults (CONTRACT.md §2).
const (
	DefaultRuntime = "molecule-agent"
	DefaultTier    = 2
)

// Org is a parsed, validated org template.
type Org struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Defaults    Defaults `json:"defaults"`
	Workspaces  []Node   `json:"workspaces"`
	// Root is the org template's directory with symlinks resolved; empty
	// for an inline template. Node.FilesDir is relative to it.
	Root string `json:"-"`
}

// Defaults apply to every node of the org that does not set the field.
type Defaults struct {
	Runtime string   `json:"runtime,omitempty"`
	Tier    int      `json:"tier,omitempty"`
	Model   string   `json:"model,omitempty"`
	Plugins []string `json:"plugins,omitempty"`
	// InitialPrompt and IdlePrompt hold the text, whether it was written
	// inline or in initial_prompt_file / idle_prompt_file.
	InitialPrompt string `json:"initial_prompt,omitempty"`
	IdlePrompt    string `json:"idle_prompt,omitempty"`
}

// Node is one workspace of the tree. Defaults have been applied: Runtime
// and Tier are always set, Plugins is the org's default plugins followed by
// the node's own (deduplicated).
type Node struct {
	Name    string `json:"name"`
	Role    string `json:"role,omitempty"`
	Runtime string `json:"runtime"`
	Tier    int    `json:"tier"`
	Model   string `json:"model,omitempty"`
	// SystemPrompt is the text of system_prompt or system_prompt_file.
	SystemPrompt string `json:"system_prompt,omitempty"`
	// FilesDir is a slash-separated path relative to Org.Root, checked to
	// be a directory inside the root; empty when the node has none.
	FilesDir        string     `json:"files_dir,omitempty"`
	WorkspaceDir    string     `json:"workspace_dir,omitempty"`
	WorkspaceAccess string     `json:"workspace_access"`
	Plugins         []string   `json:"plugins,omitempty"`
	Schedules       []Schedule `json:"schedules,omitempty"`
	Channels        []Channel  `json:"channels,omitempty"`
	BudgetLimit     *int64     `json:"budget_limit,omitempty"`
	External        bool       `json:"external,omitempty"`
	URL             string     `json:"url,omitempty"`
	Canvas          *Canvas    `json:"canvas,omitempty"`
	Children        []Node     `json:"children,omitempty"`
}

// Schedule is a template-owned cron schedule (CONTRACT.md §16). Prompt
// holds the text of prompt or prompt_file.
type Schedule struct {
	Name     string `json:"name"`
	CronExpr string `json:"cron_expr"`
	Timezone string `json:"timezone"`
	Prompt   string `json:"prompt"`
	Enabled  bool   `json:"enabled"`
}

// Channel is a messaging channel (CONTRACT.md §17). Config string values
// have had ${VAR} expanded; they may hold secrets, so never log a Config.
type Channel struct {
	Type    string         `json:"channel_type"`
	Config  map[string]any `json:"config"`
	Enabled bool           `json:"enabled"`
}

// Canvas is a node's position on the canvas.
type Canvas struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
}

// WalkFunc is called for every node in depth-first pre-order. path is the
// node's YAML path (workspaces[1].children[0]); parent is nil for roots.
// Returning an error stops the walk and Walk returns that error.
type WalkFunc func(path string, n *Node, parent *Node) error

// Walk visits every node of the org, parents before children.
func (o *Org) Walk(fn WalkFunc) error {
	for i := range o.Workspaces {
		if err := walk(indexPath("workspaces", i), &o.Workspaces[i], nil, fn); err != nil {
			return err
		}
	}
	return nil
}

func walk(path string, n, parent *Node, fn WalkFunc) error {
	if err := fn(path, n, parent); err != nil {
		return err
	}
	for i := range n.Children {
		if err := walk(path+"."+indexPath("children", i), &n.Children[i], n, fn); err != nil {
			return err
		}
	}
	return nil
}

// Count returns the number of workspaces in the org, children included.
func (o *Org) Count() int {
	total := 0
	for i := range o.Workspaces {
		total += o.Workspaces[i].Count()
	}
	return total
}

// Count returns the number of workspaces in the subtree rooted at n.
func (n *Node) Count() int {
	total := 1
	for i := range n.Children {
		total += n.Children[i].Count()
	}
	return total
}
