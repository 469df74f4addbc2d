// Package config loads the reference agent's settings: the environment the
// provisioner gives it (CONTRACT §12), the generated /configs/config.yaml and
// system prompt, and the workspace token file.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Defaults used when neither env nor config.yaml say otherwise.
const (
	DefaultConfigDir         = "/configs"
	DefaultListen            = ":8000"
	DefaultHeartbeatInterval = 30 * time.Second
	DefaultMaxTokens         = 1024
	DefaultAnthropicBase     = "https://api.anthropic.com"
	// Prices mirror the platform's default metering (CONTRACT §6) so the
	// spend the agent reports agrees with what the platform would compute.
	DefaultInputUSDPerMTok  = 3.0
	DefaultOutputUSDPerMTok = 15.0
)

// Sentinel errors; callers match them with errors.Is.
var (
	ErrBadConfigFile = errors.New("config.yaml is not valid YAML for the agent")
	ErrBadEnv        = errors.New("invalid environment value")
)

// Skill is one entry of the agent card's skills. config.yaml may list a skill
// as a bare string (template import writes file-derived names that way) or as
// a mapping with id/name/description/tags.
type Skill struct {
	ID          string   `yaml:"id" json:"id"`
	Name        string   `yaml:"name" json:"name"`
	Description string   `yaml:"description" json:"description"`
	Tags        []string `yaml:"tags" json:"tags"`
}

// UnmarshalYAML accepts a scalar or a mapping.
func (s *Skill) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		s.ID, s.Name = n.Value, n.Value
		return nil
	}
	type plain Skill
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*s = Skill(p)
	if s.ID == "" {
		s.ID = s.Name
	}
	if s.Name == "" {
		s.Name = s.ID
	}
	return nil
}

// File is the subset of config.yaml the agent understands. Unknown keys are
// ignored so the platform can grow the file without breaking old agents.
type File struct {
	Name         string   `yaml:"name"`
	Description  string   `yaml:"description"`
	Role         string   `yaml:"role"`
	Version      string   `yaml:"version"`
	Model        string   `yaml:"model"`
	MaxTokens    int      `yaml:"max_tokens"`
	SystemPrompt string   `yaml:"system_prompt"`
	Skills       []Skill  `yaml:"skills"`
	PromptFiles  []string `yaml:"prompt_files"`
}

// Config is everything the agent needs to run.
type Config struct {
	WorkspaceID       string
	PlatformURL       string // empty: standalone, no registration
	ConfigDir         string
	TokenPath         string
	ListenAddr        string
	AgentURL          string
	HeartbeatInterval time.Duration

	File         File
	SystemPrompt string // system-prompt.md, config system_prompt and prompt_files, joined
	Model        string // env MODEL wins over config.yaml model
	MaxTokens    int

	AnthropicKey  string
	AnthropicBase string
	OpenAIKey     string
	OpenAIBase    string

	InputUSDPerMTok  float64
	OutputUSDPerMTok float64
}

// Getenv abstracts os.Getenv so tests can supply an environment map.
type Getenv func(string) string

// Load reads the environment and the config directory. A missing config.yaml
// or system-prompt.md is fine; a config.yaml that is not YAML, or an env value
// that cannot be parsed, is an error naming the culprit.
func Load(getenv Getenv) (*Config, error) {
	c := &Config{
		WorkspaceID:      strings.TrimSpace(getenv("WORKSPACE_ID")),
		PlatformURL:      strings.TrimRight(strings.TrimSpace(getenv("PLATFORM_URL")), "/"),
		ConfigDir:        getenv("WORKSPACE_CONFIG_PATH"),
		ListenAddr:       getenv("AGENT_LISTEN"),
		AgentURL:         strings.TrimSpace(getenv("AGENT_URL")),
		AnthropicKey:     strings.TrimSpace(getenv("ANTHROPIC_API_KEY")),
		AnthropicBase:    strings.TrimRight(strings.TrimSpace(getenv("ANTHROPIC_BASE_URL")), "/"),
		OpenAIKey:        strings.TrimSpace(getenv("OPENAI_API_KEY")),
		OpenAIBase:       strings.TrimRight(strings.TrimSpace(getenv("OPENAI_BASE_URL")), "/"),
		InputUSDPerMTok:  DefaultInputUSDPerMTok,
		OutputUSDPerMTok: DefaultOutputUSDPerMTok,
	}
	if c.PlatformURL == "" {
		c.PlatformURL = strings.TrimRight(strings.TrimSpace(getenv("MOLECULE_URL")), "/")
	}
	if c.ConfigDir == "" {
		c.ConfigDir = DefaultConfigDir
	}
	c.TokenPath = filepath.Join(c.ConfigDir, ".auth_token")
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListen
	}
	if c.AnthropicBase == "" {
		c.AnthropicBase = DefaultAnthropicBase
	}
	c.HeartbeatInterval = DefaultHeartbeatInterval
	if v := getenv("HEARTBEAT_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%w: HEARTBEAT_INTERVAL=%q (want a positive duration like 30s)", ErrBadEnv, v)
		}
		c.HeartbeatInterval = d
	}
	for _, p := range []struct {
		name string
		dst  *float64
	}{{"PRICE_INPUT_USD_PER_MTOK", &c.InputUSDPerMTok}, {"PRICE_OUTPUT_USD_PER_MTOK", &c.OutputUSDPerMTok}} {
		if v := getenv(p.name); v != "" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 {
				return nil, fmt.Errorf("%w: %s=%q", ErrBadEnv, p.name, v)
			}
			*p.dst = f
		}
	}

	if err := c.loadFiles(); err != nil {
		return nil, err
	}

	c.Model = strings.TrimSpace(getenv("MODEL"))
	if c.Model == "" {
		c.Model = c.File.Model
	}
	c.MaxTokens = c.File.MaxTokens
	if v := getenv("MAX_TOKENS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%w: MAX_TOKENS=%q", ErrBadEnv, v)
		}
		c.MaxTokens = n
	}
	if c.MaxTokens <= 0 {
		c.MaxTokens = DefaultMaxTokens
	}
	if c.AgentURL == "" {
		c.AgentURL = defaultAgentURL(c.ListenAddr)
	}
	return c, nil
}

func (c *Config) loadFiles() error {
	raw, err := os.ReadFile(filepath.Join(c.ConfigDir, "config.yaml"))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read config.yaml: %w", err)
	default:
		if err := yaml.Unmarshal(raw, &c.File); err != nil {
			return fmt.Errorf("%w: %s", ErrBadConfigFile, firstLine(err.Error()))
		}
	}

	var parts []string
	if b, err := os.ReadFile(filepath.Join(c.ConfigDir, "system-prompt.md")); err == nil {
		parts = append(parts, string(b))
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read system-prompt.md: %w", err)
	}
	if s := strings.TrimSpace(c.File.SystemPrompt); s != "" {
		parts = append(parts, s)
	}
	for _, name := range c.File.PromptFiles {
		p, ok := confined(c.ConfigDir, name)
		if !ok {
			// A prompt file must live inside /configs; anything else is ignored
			// rather than read, so a config can't point the agent at /etc.
			continue
		}
		if b, err := os.ReadFile(p); err == nil {
			parts = append(parts, string(b))
		}
	}
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	c.SystemPrompt = strings.TrimSpace(strings.Join(parts, "\n\n"))
	return nil
}

// confined joins a relative name under dir, refusing absolute paths, NUL and
// anything that escapes dir.
func confined(dir, name string) (string, bool) {
	if name == "" || strings.ContainsRune(name, 0) || filepath.IsAbs(name) {
		return "", false
	}
	clean := filepath.Clean(name)
	if clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
		return "", false
	}
	return filepath.Join(dir, clean), true
}

// defaultAgentURL is http://<hostname>:<listen port>. On a Docker network the
// container's hostname (its short id, unless the provisioner sets one) resolves
// to it; provisioners that know better set AGENT_URL.
func defaultAgentURL(listen string) string {
	port := "8000"
	if _, p, err := net.SplitHostPort(listen); err == nil && p != "" && p != "0" {
		port = p
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// ReadToken reads the workspace token from path, trimming whitespace. It is
// called on every platform request so a rotated token is picked up without a
// restart.
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	return t, nil
}
