package api

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moleculesai/molecule/internal/provisioner/provisionertest"
)

// inlineOrg is an org of 1 + teams*perTeam workspaces, each with a
// schedule, named uniquely by tag.
func inlineOrg(tag string, teams, perTeam int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: Bench %s\nworkspaces:\n  - name: Root\n    children:\n", tag)
	for i := 0; i < teams; i++ {
		fmt.Fprintf(&b, "      - name: Lead %d\n        schedules: [{name: s, cron_expr: \"0 9 * * 1-5\", prompt: go}]\n        children:\n", i)
		for j := 0; j < perTeam; j++ {
			fmt.Fprintf(&b, "          - {name: \"Member %d-%d\", role: dev}\n", i, j)
		}
	}
	return b.String()
}

// BenchmarkOrgImportFresh creates an 18-workspace org per iteration (one
// transaction, background provisioning on a recording fake).
func BenchmarkOrgImportFresh(b *testing.B) {
	e := newOrgEnv(b, nil, provisionertest.New())
	i := 0
	for b.Loop() {
		i++
		r := e.Serve("POST", "/org/import", e.Admin, map[string]any{"template": inlineOrg(fmt.Sprint(i), 3, 5)})
		if r.Status != 201 {
			b.Fatalf("%d %s", r.Status, r.Body)
		}
	}
}

// BenchmarkOrgReimportExample re-imports the example org (matches every
// workspace, syncs template schedules; writes nothing new).
func BenchmarkOrgReimportExample(b *testing.B) {
	templates, _ := filepath.Abs("../../org-templates")
	e := newOrgEnv(b, map[string]string{"MOLECULE_ORG_TEMPLATES_DIR": templates}, provisionertest.New())
	if r := e.Serve("POST", "/org/import", e.Admin, map[string]any{"dir": "software-team"}); r.Status != 201 {
		b.Fatal(r.Status)
	}
	for b.Loop() {
		if r := e.Serve("POST", "/org/import", e.Admin, map[string]any{"dir": "software-team"}); r.Status != 201 {
			b.Fatalf("%d %s", r.Status, r.Body)
		}
	}
}
