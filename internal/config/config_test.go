package config

import (
	"strings"
	"testing"
	"time"
)

func base() map[string]string {
	return map[string]string{"DATABASE_URL": "postgres://u@localhost:5432/molecule?sslmode=disable"}
}

func TestDefaults(t *testing.T) {
	c, err := Load(FromMap(base()))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":8080" || c.DataDir != "./.data" || c.AgentNetwork != "private" ||
		c.LivenessTTL != 180*time.Second || c.ProvisionTimeout != 10*time.Minute || c.BodyLimit != 1<<20 ||
		c.RateLimit != 0 || c.MetricsPublic || c.InputPricePerMTok != 3 || c.OutputPricePerMTok != 15 {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if len(c.TemplateEnv) != 1 || c.TemplateEnv[0] != "WORKSPACE_DIR" {
		t.Fatalf("MOLECULE_TEMPLATE_ENV default: %v", c.TemplateEnv)
	}
	if c.RuntimeImages["molecule-agent"] != "molecule/workspace-agent:latest" {
		t.Fatalf("runtime images: %v", c.RuntimeImages)
	}
}

func TestPortHonouredWhenListenUnset(t *testing.T) {
	env := base()
	env["PORT"] = "9090"
	c, err := Load(FromMap(env))
	if err != nil || c.Listen != ":9090" {
		t.Fatalf("PORT: %v %v", c, err)
	}
	env["MOLECULE_LISTEN"] = "127.0.0.1:7000"
	c, err = Load(FromMap(env))
	if err != nil || c.Listen != "127.0.0.1:7000" {
		t.Fatalf("MOLECULE_LISTEN wins: %v %v", c, err)
	}
}

// Every bad value stops the start with a message naming the variable.
func TestInvalidValuesNameTheVariable(t *testing.T) {
	cases := map[string]map[string]string{
		"DATABASE_URL":                   {"DATABASE_URL": ""},
		"DATABASE_URL ":                  {"DATABASE_URL": "mysql://x"},
		"REDIS_URL":                      {"REDIS_URL": "http://redis:6379"},
		"MOLECULE_PROVISIONER":           {"MOLECULE_PROVISIONER": "kubernetes"},
		"MOLECULE_AGENT_NETWORK":         {"MOLECULE_AGENT_NETWORK": "open"},
		"MOLECULE_LIVENESS_TTL":          {"MOLECULE_LIVENESS_TTL": "soon"},
		"MOLECULE_PROVISION_TIMEOUT":     {"MOLECULE_PROVISION_TIMEOUT": "-5s"},
		"MOLECULE_RATE_LIMIT":            {"MOLECULE_RATE_LIMIT": "ten"},
		"MOLECULE_METRICS_PUBLIC":        {"MOLECULE_METRICS_PUBLIC": "maybe"},
		"MOLECULE_LISTEN":                {"MOLECULE_LISTEN": "8080"},
		"MOLECULE_PUBLIC_URL":            {"MOLECULE_PUBLIC_URL": "ftp://x"},
		"CORS_ORIGINS":                   {"CORS_ORIGINS": "https://ok.example, not-an-origin"},
		"LOG_LEVEL":                      {"LOG_LEVEL": "loud"},
		"LOG_FORMAT":                     {"LOG_FORMAT": "xml"},
		"MOLECULE_RUNTIME_IMAGES":        {"MOLECULE_RUNTIME_IMAGES": "molecule-agent"},
		"MOLECULE_ORG_ID":                {"MOLECULE_PROVISIONER": "controlplane"},
		"MOLECULE_BODY_LIMIT":            {"MOLECULE_BODY_LIMIT": "0"},
		"MOLECULE_PLUGIN_GIT_BASE_URL":   {"MOLECULE_PLUGIN_GIT_BASE_URL": "ssh://git@github.com"},
		"MOLECULE_PLUGIN_GIT_BASE_URL ":  {"MOLECULE_PLUGIN_GIT_BASE_URL": "https://user:pw@github.com"},
		"MOLECULE_PLUGIN_GIT_BASE_URL  ": {"MOLECULE_PLUGIN_GIT_BASE_URL": "https://"},
	}
	for name, over := range cases {
		env := base()
		for k, v := range over {
			env[k] = v
		}
		_, err := Load(FromMap(env))
		if err == nil {
			t.Errorf("%s: expected an error", name)
			continue
		}
		if !strings.Contains(err.Error(), strings.TrimSpace(name)) {
			t.Errorf("%s: error %q does not name the variable", name, err)
		}
	}
}

func TestDurationsAcceptSeconds(t *testing.T) {
	env := base()
	env["MOLECULE_LIVENESS_TTL"] = "90"
	c, err := Load(FromMap(env))
	if err != nil || c.LivenessTTL != 90*time.Second {
		t.Fatalf("got %v %v", c.LivenessTTL, err)
	}
}

func TestRuntimeImagesOverride(t *testing.T) {
	env := base()
	env["MOLECULE_RUNTIME_IMAGES"] = "molecule-agent=my/agent:1, hermes=my/hermes:2"
	c, err := Load(FromMap(env))
	if err != nil {
		t.Fatal(err)
	}
	if c.RuntimeImages["molecule-agent"] != "my/agent:1" || c.RuntimeImages["hermes"] != "my/hermes:2" {
		t.Fatalf("images: %v", c.RuntimeImages)
	}
}
