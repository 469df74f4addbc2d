package config

import (
	"strings"
	"testing"

	"github.com/moleculesai/molecule/internal/artifacts"
)

// TestArtifactsURL checks the one default shared with the client and which
// CF_ARTIFACTS_API_URL values start the server.
func TestArtifactsURL(t *testing.T) {
	base := map[string]string{"DATABASE_URL": "postgres://u@localhost/db"}
	c, err := Load(FromMap(base))
	if err != nil {
		t.Fatal(err)
	}
	if c.CFArtifactsAPIURL != artifacts.DefaultBaseURL {
		t.Errorf("default CF_ARTIFACTS_API_URL = %q, want the client's %q", c.CFArtifactsAPIURL, artifacts.DefaultBaseURL)
	}
	if c.ArtifactsEnabled() {
		t.Error("enabled without token and namespace")
	}
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://api.cloudflare.com/client/v4/accounts/abc/artifacts", true},
		{"http://127.0.0.1:8787/artifacts", true},
		{"http://[::1]:8787", true},
		{"http://localhost:8787", true},
		{"http://api.cloudflare.com/client/v4", false},
		{"http://10.0.0.1/x", false},
		{"ftp://api.cloudflare.com", false},
		{"https://", false},
		{"https://user:pw@api.cloudflare.com", false},
		{"https://api.cloudflare.com/?x=1", false},
		{"api.cloudflare.com/client/v4", false},
		{"https://api.cloudflare.com/%zz", false},
	} {
		env := map[string]string{"CF_ARTIFACTS_API_URL": tc.url}
		for k, v := range base {
			env[k] = v
		}
		_, err := Load(FromMap(env))
		if tc.ok && err != nil {
			t.Errorf("%q: unexpected error %v", tc.url, err)
		}
		if !tc.ok && (err == nil || !strings.Contains(err.Error(), "CF_ARTIFACTS_API_URL")) {
			t.Errorf("%q: error = %v, want one naming CF_ARTIFACTS_API_URL", tc.url, err)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("%q: error echoes the URL's password: %v", tc.url, err)
		}
	}
}
