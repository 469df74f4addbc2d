package provisioner

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/moleculesai/molecule/internal/config"
)

func TestSelect(t *testing.T) {
	base := map[string]string{"DATABASE_URL": "postgres://u:pw@db/x"}
	load := func(extra map[string]string) *config.Config {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		c, err := config.Load(config.FromMap(m))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx := context.Background()

	if p, err := Select(ctx, load(map[string]string{"MOLECULE_PROVISIONER": "none"}), log); p != nil || err != nil {
		t.Errorf("none: %v %v", p, err)
	}
	p, err := Select(ctx, load(map[string]string{"MOLECULE_PROVISIONER": "controlplane", "MOLECULE_ORG_ID": "o1"}), log)
	if err != nil || p == nil || p.Name() != "controlplane" {
		t.Errorf("controlplane: %v %v", p, err)
	}
	p, err = Select(ctx, load(map[string]string{"MOLECULE_ORG_ID": "o1"}), log)
	if err != nil || p == nil || p.Name() != "controlplane" {
		t.Errorf("org id → controlplane: %v %v", p, err)
	}
	// No daemon reachable: auto-selection falls back to none; an explicit
	// docker choice stays docker (provisioning fails until the daemon is up).
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	if p, err := Select(ctx, load(nil), log); p != nil || err != nil {
		t.Errorf("auto without daemon: %v %v", p, err)
	}
	p, err = Select(ctx, load(map[string]string{"MOLECULE_PROVISIONER": "docker"}), log)
	if err != nil || p == nil || p.Name() != "docker" {
		t.Errorf("explicit docker: %v %v", p, err)
	}
	for _, want := range []string{"provisioner: none (MOLECULE_PROVISIONER=none)", "provisioner: controlplane (MOLECULE_ORG_ID is set)", "no Docker daemon", "daemon does not answer"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if strings.Contains(logs.String(), "pw@") {
		t.Errorf("DSN password logged")
	}
	if PlatformIDFromDSN("postgres://u:pw@db/x") != PlatformIDFromDSN("postgres://u:other@db/x") ||
		PlatformIDFromDSN("postgres://u@db/x") == PlatformIDFromDSN("postgres://u@db/y") {
		t.Errorf("platform id must ignore the password and differ per database")
	}
}
