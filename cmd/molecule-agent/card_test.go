package main

import (
	"testing"

	"github.com/moleculesai/molecule/cmd/molecule-agent/internal/config"
)

func TestBuildCard(t *testing.T) {
	c := buildCard(&config.Config{WorkspaceID: "ws-1", AgentURL: "http://ws-1:8000"})
	if c.Name != "molecule-agent ws-1" || c.Description != "Molecule reference agent" || c.Version != version ||
		c.URL != "http://ws-1:8000" || len(c.Skills) != 0 || c.Capabilities.Streaming {
		t.Errorf("default card = %+v", c)
	}
	c = buildCard(&config.Config{File: config.File{
		Name: "Ops", Description: "runs ops", Version: "2.1",
		Skills: []config.Skill{{ID: "deploy", Name: "Deploy", Tags: []string{"ci"}}, {}, {ID: "x", Name: "x"}},
	}})
	if c.Name != "Ops" || c.Description != "runs ops" || c.Version != "2.1" || len(c.Skills) != 2 ||
		c.Skills[0].Tags[0] != "ci" || c.Skills[1].Tags == nil {
		t.Errorf("configured card = %+v", c)
	}
}
