package provisioner

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/store"
)

// BenchmarkBuildEnv: the environment of one provisioning with 20 secrets.
func BenchmarkBuildEnv(b *testing.B) {
	ws := &store.Workspace{ID: uuid.New(), Name: "Backend Dev", Tier: 2}
	var global, own []KV
	for i := 0; i < 10; i++ {
		global = append(global, KV{"GLOBAL_" + string(rune('A'+i)), "value"})
		own = append(own, KV{"OWN_" + string(rune('A'+i)), "value"})
	}
	in := EnvInput{Workspace: ws, PlatformURL: "http://host.docker.internal:8080", Global: global, Secrets: own}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := BuildEnv(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConfigDocYAML: a template config with 50 skills.
func BenchmarkConfigDocYAML(b *testing.B) {
	d := ConfigDoc{Name: "reviewer", Template: "reviewer"}
	for i := 0; i < 50; i++ {
		d.Skills = append(d.Skills, "skill \"quoted\"\nline")
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = d.YAML()
	}
}
