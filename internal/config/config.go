// Package config reads the server's configuration from the environment
// (CONTRACT §21) into one struct and validates it, so that a bad value stops
// the server at start with a message naming the variable.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/moleculesai/molecule/internal/artifacts"
)

// Config is everything the server reads from its environment.
type Config struct {
	DatabaseURL string
	RedisURL    string
	// RedisPrefix namespaces every Redis key and channel, so that several
	// platforms (or parallel test runs) can share one Redis.
	RedisPrefix string

	Listen    string
	DataDir   string
	PublicURL string

	// AdminToken and SecretsKey are empty when not configured; the app then
	// generates them in DataDir on first start.
	AdminToken    string
	SecretsKey    string
	SecretsOldKey string

	Provisioner          string // "", docker, controlplane, none
	OrgID                string
	CPProvisionURL       string
	CPSharedSecret       string
	DockerNetwork        string
	RuntimeImages        map[string]string
	AllowPrivilegedTier4 bool

	AgentNetwork     string // private or public
	LivenessTTL      time.Duration
	ProvisionTimeout time.Duration
	SweepInterval    time.Duration

	OrgTemplatesDir string
	PluginsDir      string
	TemplatesDir    string
	// PluginGitBaseURL is where github://owner/repo#commit plugin sources
	// are fetched from (<base>/<owner>/<repo>.git). Tests point it at a
	// file:// directory of bare repositories.
	PluginGitBaseURL string
	TemplateEnv      []string

	RateLimit     int
	CORSOrigins   []string
	MetricsPublic bool
	BodyLimit     int64

	// Prices used to estimate cost from metered tokens, in USD per million.
	InputPricePerMTok  float64
	OutputPricePerMTok float64

	EventRetention time.Duration

	GitHubAppID          string
	GitHubInstallationID string
	GitHubPrivateKeyFile string
	GitHubAPIURL         string

	CFArtifactsAPIURL    string
	CFArtifactsNamespace string
	CFArtifactsAPIToken  string

	LogLevel  string
	LogFormat string
}

// Getenv is the lookup Load reads through; tests pass a map-backed one.
type Getenv func(string) string

// FromMap adapts a map for Load.
func FromMap(m map[string]string) Getenv { return func(k string) string { return m[k] } }

// Load reads the environment and validates it. Every error names the
// variable at fault; values of secrets are never echoed.
func Load(getenv Getenv) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	p := parser{get: getenv}
	c := &Config{
		DatabaseURL:          getenv("DATABASE_URL"),
		RedisURL:             getenv("REDIS_URL"),
		RedisPrefix:          p.str("MOLECULE_REDIS_PREFIX", "molecule"),
		Listen:               getenv("MOLECULE_LISTEN"),
		DataDir:              p.str("MOLECULE_DATA_DIR", "./.data"),
		PublicURL:            firstNonEmpty(getenv("MOLECULE_PUBLIC_URL"), getenv("PLATFORM_URL")),
		AdminToken:           getenv("ADMIN_TOKEN"),
		SecretsKey:           getenv("SECRETS_ENCRYPTION_KEY"),
		SecretsOldKey:        getenv("MOLECULE_SECRETS_OLD_KEYS"),
		Provisioner:          getenv("MOLECULE_PROVISIONER"),
		OrgID:                getenv("MOLECULE_ORG_ID"),
		CPProvisionURL:       p.str("CP_PROVISION_URL", "https://api.moleculesai.app"),
		CPSharedSecret:       getenv("MOLECULE_CP_SHARED_SECRET"),
		DockerNetwork:        p.str("MOLECULE_DOCKER_NETWORK", "molecule-agents"),
		RuntimeImages:        p.kvMap("MOLECULE_RUNTIME_IMAGES", map[string]string{"molecule-agent": "molecule/workspace-agent:latest"}),
		AllowPrivilegedTier4: p.boolean("MOLECULE_ALLOW_PRIVILEGED_TIER4", false),
		AgentNetwork:         p.str("MOLECULE_AGENT_NETWORK", "private"),
		LivenessTTL:          p.duration("MOLECULE_LIVENESS_TTL", 180*time.Second),
		ProvisionTimeout:     p.duration("MOLECULE_PROVISION_TIMEOUT", 10*time.Minute),
		SweepInterval:        p.duration("MOLECULE_SWEEP_INTERVAL", 15*time.Second),
		OrgTemplatesDir:      p.str("MOLECULE_ORG_TEMPLATES_DIR", "./org-templates"),
		PluginsDir:           p.str("MOLECULE_PLUGINS_DIR", "./plugins"),
		TemplatesDir:         p.str("MOLECULE_TEMPLATES_DIR", "./templates"),
		PluginGitBaseURL:     p.str("MOLECULE_PLUGIN_GIT_BASE_URL", "https://github.com"),
		TemplateEnv:          p.list("MOLECULE_TEMPLATE_ENV", []string{"WORKSPACE_DIR"}),
		RateLimit:            p.integer("MOLECULE_RATE_LIMIT", 0),
		CORSOrigins:          p.list("CORS_ORIGINS", nil),
		MetricsPublic:        p.boolean("MOLECULE_METRICS_PUBLIC", false),
		BodyLimit:            int64(p.integer("MOLECULE_BODY_LIMIT", 1<<20)),
		InputPricePerMTok:    p.float("MOLECULE_PRICE_INPUT_PER_MTOK", 3),
		OutputPricePerMTok:   p.float("MOLECULE_PRICE_OUTPUT_PER_MTOK", 15),
		EventRetention:       p.duration("MOLECULE_EVENT_RETENTION", 7*24*time.Hour),
		GitHubAppID:          getenv("GITHUB_APP_ID"),
		GitHubInstallationID: getenv("GITHUB_APP_INSTALLATION_ID"),
		GitHubPrivateKeyFile: getenv("GITHUB_APP_PRIVATE_KEY_FILE"),
		GitHubAPIURL:         p.str("GITHUB_API_URL", "https://api.github.com"),
		CFArtifactsAPIURL:    p.str("CF_ARTIFACTS_API_URL", artifacts.DefaultBaseURL),
		CFArtifactsNamespace: getenv("CF_ARTIFACTS_NAMESPACE"),
		CFArtifactsAPIToken:  getenv("CF_ARTIFACTS_API_TOKEN"),
		LogLevel:             p.str("LOG_LEVEL", "info"),
		LogFormat:            p.str("LOG_FORMAT", "json"),
	}
	if c.Listen == "" {
		c.Listen = ":8080"
		if port := getenv("PORT"); port != "" {
			c.Listen = ":" + port
		}
	}
	if p.err != nil {
		return nil, p.err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate checks values that parse but make no sense.
func (c *Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	if c.DatabaseURL == "" {
		bad("DATABASE_URL", "is required (a Postgres DSN such as postgres://user@localhost/molecule)")
	} else if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		bad("DATABASE_URL", "must be a postgres:// or postgresql:// URL")
	}
	if c.RedisURL != "" {
		if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
			bad("REDIS_URL", "must be a redis:// or rediss:// URL")
		}
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("MOLECULE_LISTEN", "must be host:port or :port")
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("MOLECULE_PUBLIC_URL", "must be an http(s) URL")
		}
	}
	if u, err := url.Parse(c.PluginGitBaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "file") ||
		(u.Scheme != "file" && u.Host == "") || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		bad("MOLECULE_PLUGIN_GIT_BASE_URL", "must be an http(s):// or file:// URL without credentials, query or fragment")
	}
	switch c.Provisioner {
	case "", "docker", "controlplane", "none":
	default:
		bad("MOLECULE_PROVISIONER", "must be docker, controlplane or none (got %q)", c.Provisioner)
	}
	switch c.AgentNetwork {
	case "private", "public":
	default:
		bad("MOLECULE_AGENT_NETWORK", "must be private or public (got %q)", c.AgentNetwork)
	}
	if c.LivenessTTL <= 0 {
		bad("MOLECULE_LIVENESS_TTL", "must be positive")
	}
	if c.ProvisionTimeout <= 0 {
		bad("MOLECULE_PROVISION_TIMEOUT", "must be positive")
	}
	if c.SweepInterval <= 0 {
		bad("MOLECULE_SWEEP_INTERVAL", "must be positive")
	}
	if c.RateLimit < 0 {
		bad("MOLECULE_RATE_LIMIT", "must be 0 (off) or a positive number of requests per minute")
	}
	if c.BodyLimit <= 0 {
		bad("MOLECULE_BODY_LIMIT", "must be positive")
	}
	if c.InputPricePerMTok < 0 || c.OutputPricePerMTok < 0 {
		bad("MOLECULE_PRICE_INPUT_PER_MTOK/MOLECULE_PRICE_OUTPUT_PER_MTOK", "must not be negative")
	}
	if c.EventRetention <= 0 {
		bad("MOLECULE_EVENT_RETENTION", "must be positive")
	}
	for _, o := range c.CORSOrigins {
		if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			bad("CORS_ORIGINS", "%q is not an origin like https://canvas.example.com", o)
		}
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		bad("LOG_LEVEL", "must be debug, info, warn or error")
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		bad("LOG_FORMAT", "must be json or text")
	}
	if c.CFArtifactsAPIURL != "" && !validArtifactsURL(c.CFArtifactsAPIURL) {
		bad("CF_ARTIFACTS_API_URL", "must be an https:// URL (http:// only for a loopback host)")
	}
	if c.Provisioner == "controlplane" && c.OrgID == "" {
		bad("MOLECULE_ORG_ID", "is required with MOLECULE_PROVISIONER=controlplane")
	}
	return errors.Join(errs...)
}

// ArtifactsEnabled reports whether both Cloudflare Artifacts variables are set.
func (c *Config) ArtifactsEnabled() bool {
	return c.CFArtifactsAPIToken != "" && c.CFArtifactsNamespace != ""
}

// validArtifactsURL accepts https URLs, and http only for loopback hosts
// (a local fake or proxy): the Cloudflare API token travels in a header and
// must not cross a network in clear text.
func validArtifactsURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		h := u.Hostname()
		if h == "localhost" {
			return true
		}
		ip := net.ParseIP(h)
		return ip != nil && ip.IsLoopback()
	}
	return false
}

// parser collects the first parse error, naming the variable.
type parser struct {
	get Getenv
	err error
}

func (p *parser) fail(name, msg string) {
	if p.err == nil {
		p.err = fmt.Errorf("%s: %s", name, msg)
	}
}

func (p *parser) str(name, def string) string {
	if v := strings.TrimSpace(p.get(name)); v != "" {
		return v
	}
	return def
}

func (p *parser) integer(name string, def int) int {
	v := strings.TrimSpace(p.get(name))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		p.fail(name, "must be a whole number")
		return def
	}
	return n
}

func (p *parser) float(name string, def float64) float64 {
	v := strings.TrimSpace(p.get(name))
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		p.fail(name, "must be a number")
		return def
	}
	return f
}

func (p *parser) boolean(name string, def bool) bool {
	v := strings.TrimSpace(p.get(name))
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.fail(name, "must be true or false")
		return def
	}
	return b
}

func (p *parser) duration(name string, def time.Duration) time.Duration {
	v := strings.TrimSpace(p.get(name))
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		// A bare number is read as seconds, the unit operators expect.
		if n, nerr := strconv.Atoi(v); nerr == nil {
			return time.Duration(n) * time.Second
		}
		p.fail(name, "must be a duration such as 180s or 10m")
		return def
	}
	return d
}

func (p *parser) list(name string, def []string) []string {
	v := strings.TrimSpace(p.get(name))
	if v == "" {
		return def
	}
	var out []string
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// kvMap parses "k=v,k2=v2"; the defaults stay unless overridden.
func (p *parser) kvMap(name string, def map[string]string) map[string]string {
	out := make(map[string]string, len(def))
	for k, v := range def {
		out[k] = v
	}
	for _, part := range p.list(name, nil) {
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			p.fail(name, fmt.Sprintf("entry %q must be runtime=image", part))
			continue
		}
		out[k] = v
	}
	return out
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
