package orgtemplate

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const exampleDir = "../../org-templates/software-team"

// The example org must import on a fresh install: no secrets, no .env and
// an empty server environment.
func TestExampleOrgLoads(t *testing.T) {
	org, err := LoadDir(exampleDir, Options{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	if org.Name != "Software Team" || org.Description == "" {
		t.Errorf("org = %q / %q", org.Name, org.Description)
	}
	if org.Defaults.InitialPrompt == "" || org.Defaults.IdlePrompt == "" {
		t.Error("default prompts not loaded")
	}
	if n := org.Count(); n != 18 {
		t.Fatalf("Count = %d, want 18", n)
	}
	if len(org.Workspaces) != 1 {
		t.Fatalf("roots = %d, want 1 (the PM)", len(org.Workspaces))
	}
	pm := org.Workspaces[0]
	if pm.Name != "Product Manager" || pm.Role != "pm" {
		t.Errorf("root = %q (%q)", pm.Name, pm.Role)
	}

	tree := map[string][]string{}
	for _, lead := range pm.Children {
		for _, c := range lead.Children {
			tree[lead.Name] = append(tree[lead.Name], c.Name)
			if len(c.Children) != 0 {
				t.Errorf("%s has children", c.Name)
			}
		}
	}
	want := map[string][]string{
		"Dev Lead":       {"UX Designer", "Frontend Engineer", "Backend Engineer", "DevOps Engineer", "Security Engineer", "QA Engineer"},
		"Research Lead":  {"Market Researcher", "User Researcher", "Technical Researcher", "Data Analyst"},
		"Marketing Lead": {"Product Marketing Manager", "Content Writer", "SEO Specialist", "Social Media Manager"},
	}
	if !reflect.DeepEqual(tree, want) {
		t.Errorf("tree = %v", tree)
	}

	schedules := map[string]bool{}
	err = org.Walk(func(path string, n, parent *Node) error {
		if n.Runtime != DefaultRuntime || n.Tier < 2 || n.Tier > 3 {
			t.Errorf("%s: runtime %q tier %d", n.Name, n.Runtime, n.Tier)
		}
		if len(n.SystemPrompt) < 500 || !strings.HasPrefix(n.SystemPrompt, "# ") {
			t.Errorf("%s: system prompt too short or missing (%d bytes)", n.Name, len(n.SystemPrompt))
		}
		if n.FilesDir != n.Role || n.Role == "" {
			t.Errorf("%s: files_dir %q role %q", n.Name, n.FilesDir, n.Role)
		}
		if len(n.Schedules) == 0 {
			t.Errorf("%s: no schedule", n.Name)
		}
		for _, s := range n.Schedules {
			if len(s.Prompt) < 100 {
				t.Errorf("%s/%s: prompt too short", n.Name, s.Name)
			}
			schedules[s.Name] = true
		}
		if n.WorkspaceDir != "" || n.BudgetLimit != nil || len(n.Channels) != 0 {
			t.Errorf("%s: example must need no host setup", n.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Daily standup summary", "Weekly security review"} {
		if !schedules[s] {
			t.Errorf("schedule %q missing", s)
		}
	}
}

func TestExampleOrgListed(t *testing.T) {
	got, err := List(filepath.Dir(exampleDir), Options{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, s := range got {
		if s.Dir == "software-team" {
			found = true
			if s.Error != "" || s.Workspaces != 18 || s.Name != "Software Team" {
				t.Errorf("summary = %+v", s)
			}
		}
	}
	if !found {
		t.Errorf("software-team not listed: %+v", got)
	}
}
