package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) Getenv { return func(k string) string { return m[k] } }

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadDefaultsWithEmptyConfigDir(t *testing.T) {
	dir := t.TempDir()
	c, err := Load(env(map[string]string{
		"WORKSPACE_ID":          "ws-1",
		"MOLECULE_URL":          "http://platform:8080/",
		"WORKSPACE_CONFIG_PATH": dir,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.PlatformURL != "http://platform:8080" {
		t.Errorf("PlatformURL = %q, want MOLECULE_URL fallback without trailing slash", c.PlatformURL)
	}
	if c.ListenAddr != ":8000" || c.HeartbeatInterval != 30*time.Second || c.MaxTokens != DefaultMaxTokens {
		t.Errorf("defaults wrong: listen %q interval %v max %d", c.ListenAddr, c.HeartbeatInterval, c.MaxTokens)
	}
	if c.TokenPath != filepath.Join(dir, ".auth_token") {
		t.Errorf("TokenPath = %q", c.TokenPath)
	}
	host, _ := os.Hostname()
	if c.AgentURL != "http://"+host+":8000" {
		t.Errorf("AgentURL = %q, want http://%s:8000", c.AgentURL, host)
	}
	if c.AnthropicBase != DefaultAnthropicBase || c.SystemPrompt != "" || c.Model != "" {
		t.Errorf("unexpected: base %q prompt %q model %q", c.AnthropicBase, c.SystemPrompt, c.Model)
	}
	if c.InputUSDPerMTok != 3 || c.OutputUSDPerMTok != 15 {
		t.Errorf("prices %v/%v", c.InputUSDPerMTok, c.OutputUSDPerMTok)
	}
}

func TestLoadPlatformURLWinsOverMoleculeURL(t *testing.T) {
	c, err := Load(env(map[string]string{
		"PLATFORM_URL": "http://a", "MOLECULE_URL": "http://b",
		"WORKSPACE_CONFIG_PATH": t.TempDir(), "AGENT_LISTEN": "127.0.0.1:9123",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.PlatformURL != "http://a" {
		t.Errorf("PlatformURL = %q", c.PlatformURL)
	}
	if !strings.HasSuffix(c.AgentURL, ":9123") {
		t.Errorf("AgentURL %q should use the listen port", c.AgentURL)
	}
}

func TestLoadConfigFileAndPrompts(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "config.yaml", `
name: "Researcher"
description: Finds things
role: research
model: claude-x
max_tokens: 2048
unknown_key: {nested: [1, 2]}
skills:
  - "web-search"
  - id: summarise
    name: Summarise
    description: Short summaries
    tags: [text]
  - name: only-name
prompt_files:
  - prompts/extra.md
  - ../outside.md
  - /etc/passwd
  - missing.md
`)
	write(t, dir, "system-prompt.md", "  You are helpful.  \n")
	write(t, dir, "prompts/extra.md", "Be brief.")
	write(t, filepath.Dir(dir), "outside.md", "SHOULD NOT BE READ")

	c, err := Load(env(map[string]string{"WORKSPACE_CONFIG_PATH": dir}))
	if err != nil {
		t.Fatal(err)
	}
	if c.File.Name != "Researcher" || c.File.Description != "Finds things" || c.Model != "claude-x" || c.MaxTokens != 2048 {
		t.Errorf("file fields: %+v model %q max %d", c.File, c.Model, c.MaxTokens)
	}
	if len(c.File.Skills) != 3 {
		t.Fatalf("skills = %+v", c.File.Skills)
	}
	if s := c.File.Skills[0]; s.ID != "web-search" || s.Name != "web-search" {
		t.Errorf("scalar skill = %+v", s)
	}
	if s := c.File.Skills[1]; s.ID != "summarise" || s.Name != "Summarise" || s.Description != "Short summaries" || len(s.Tags) != 1 {
		t.Errorf("mapping skill = %+v", s)
	}
	if s := c.File.Skills[2]; s.ID != "only-name" {
		t.Errorf("name-only skill should take its name as id: %+v", s)
	}
	if c.SystemPrompt != "You are helpful.\n\nBe brief." {
		t.Errorf("SystemPrompt = %q", c.SystemPrompt)
	}
}

func TestLoadEnvOverridesConfigFile(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "config.yaml", "model: from-file\nmax_tokens: 10\n")
	c, err := Load(env(map[string]string{
		"WORKSPACE_CONFIG_PATH": dir, "MODEL": "from-env", "MAX_TOKENS": "77",
		"HEARTBEAT_INTERVAL": "250ms", "AGENT_URL": "http://ws-abc:8000",
		"PRICE_INPUT_USD_PER_MTOK": "1.5", "PRICE_OUTPUT_USD_PER_MTOK": "0",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Model != "from-env" || c.MaxTokens != 77 || c.HeartbeatInterval != 250*time.Millisecond ||
		c.AgentURL != "http://ws-abc:8000" || c.InputUSDPerMTok != 1.5 || c.OutputUSDPerMTok != 0 {
		t.Errorf("overrides not applied: %+v", c)
	}
}

func TestLoadRejectsBadInput(t *testing.T) {
	cases := []struct {
		name    string
		yaml    string
		env     map[string]string
		wantErr error
	}{
		{name: "not yaml", yaml: "name: [unclosed", wantErr: ErrBadConfigFile},
		{name: "wrong type", yaml: "max_tokens: lots", wantErr: ErrBadConfigFile},
		{name: "skills not a list", yaml: "skills: {a: 1}", wantErr: ErrBadConfigFile},
		{name: "bad interval", env: map[string]string{"HEARTBEAT_INTERVAL": "soon"}, wantErr: ErrBadEnv},
		{name: "zero interval", env: map[string]string{"HEARTBEAT_INTERVAL": "0s"}, wantErr: ErrBadEnv},
		{name: "negative interval", env: map[string]string{"HEARTBEAT_INTERVAL": "-1s"}, wantErr: ErrBadEnv},
		{name: "bad max tokens", env: map[string]string{"MAX_TOKENS": "-3"}, wantErr: ErrBadEnv},
		{name: "bad price", env: map[string]string{"PRICE_INPUT_USD_PER_MTOK": "cheap"}, wantErr: ErrBadEnv},
		{name: "negative price", env: map[string]string{"PRICE_OUTPUT_USD_PER_MTOK": "-1"}, wantErr: ErrBadEnv},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.yaml != "" {
				write(t, dir, "config.yaml", tc.yaml)
			}
			e := map[string]string{"WORKSPACE_CONFIG_PATH": dir}
			for k, v := range tc.env {
				e[k] = v
			}
			_, err := Load(env(e))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestLoadConfigDirUnreadable(t *testing.T) {
	dir := t.TempDir()
	// config.yaml as a directory: reading it fails with something other
	// than not-exist, which must surface.
	if err := os.Mkdir(filepath.Join(dir, "config.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(env(map[string]string{"WORKSPACE_CONFIG_PATH": dir})); err == nil {
		t.Fatal("want error for unreadable config.yaml")
	}
}

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, ".auth_token")
	if _, err := ReadToken(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
	write(t, dir, ".auth_token", " \n")
	if _, err := ReadToken(p); err == nil {
		t.Error("empty token file must be an error")
	}
	write(t, dir, ".auth_token", "tok-123\n")
	if got, err := ReadToken(p); err != nil || got != "tok-123" {
		t.Errorf("ReadToken = %q, %v", got, err)
	}
}

func TestConfined(t *testing.T) {
	for name, ok := range map[string]bool{
		"a.md": true, "dir/a.md": true, "dir/../a.md": true,
		"": false, "..": false, "../a": false, "/abs": false, "a\x00b": false, "dir/../../x": false,
	} {
		if _, got := confined("/configs", name); got != ok {
			t.Errorf("confined(%q) = %v, want %v", name, got, ok)
		}
	}
}
