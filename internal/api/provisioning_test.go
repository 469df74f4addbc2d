package api_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/moleculesai/molecule/internal/apptest"
)

// fakeGitHub answers POST /app/installations/:id/access_tokens as GitHub
// documents it (201 {token, expires_at}); fail switches it to 500.
type fakeGitHub struct {
	mu    sync.Mutex
	fail  bool
	calls int
}

func (f *fakeGitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if r.Method != http.MethodPost || r.URL.Path != "/app/installations/77/access_tokens" ||
		!strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ey") {
		http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
		return
	}
	if f.fail {
		http.Error(w, `{"message":"upstream exploded at /internal/db"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{"token": "ghs_SECRET_TOKEN_123", "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
}

func writeKey(t *testing.T) string {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGitHubInstallationToken(t *testing.T) {
	gh := &fakeGitHub{}
	srv := httptest.NewServer(gh)
	defer srv.Close()
	logs := &syncBuffer{}
	in := apptest.Start(t, apptest.Options{Log: logs, Env: map[string]string{
		"GITHUB_APP_ID": "12", "GITHUB_APP_INSTALLATION_ID": "77", "GITHUB_APP_PRIVATE_KEY_FILE": writeKey(t), "GITHUB_API_URL": srv.URL,
	}})
	wsID, wsTok := in.CreateWorkspaceRow("gh", nil)
	otherID, otherTok := in.CreateWorkspaceRow("other", nil)
	_ = otherID

	r := in.Do("GET", "/admin/github-installation-token", in.Admin, nil)
	if r.Status != 200 || r.Map(t)["token"] != "ghs_SECRET_TOKEN_123" || r.Map(t)["expires_at"] == nil {
		t.Fatalf("admin: %d %s", r.Status, r.Body)
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", r.Header.Get("Cache-Control"))
	}
	if r := in.Do("GET", "/workspaces/"+wsID.String()+"/github-installation-token", wsTok, nil); r.Status != 200 || r.Map(t)["token"] != "ghs_SECRET_TOKEN_123" {
		t.Fatalf("workspace: %d %s", r.Status, r.Body)
	}
	// Wrong principals.
	for _, c := range []struct {
		path, bearer string
		want         int
	}{
		{"/admin/github-installation-token", "", 401},
		{"/admin/github-installation-token", "garbage", 401},
		{"/admin/github-installation-token", wsTok, 403},
		{"/workspaces/" + wsID.String() + "/github-installation-token", otherTok, 403},
		{"/workspaces/" + wsID.String() + "/github-installation-token", "", 401},
		{"/workspaces/not-a-uuid/github-installation-token", in.Admin, 400},
		{"/workspaces/00000000-0000-4000-8000-000000000000/github-installation-token", in.Admin, 404},
	} {
		if r := in.Do("GET", c.path, c.bearer, nil); r.Status != c.want {
			t.Errorf("GET %s as %q: %d, want %d", c.path, c.bearer, r.Status, c.want)
		}
	}

	// A provider error is a generic 500 (the cached token expires first:
	// use a fresh instance whose GitHub fails from the start).
	gh2 := &fakeGitHub{fail: true}
	srv2 := httptest.NewServer(gh2)
	defer srv2.Close()
	logs2 := &syncBuffer{}
	in2 := apptest.Start(t, apptest.Options{Log: logs2, Env: map[string]string{
		"GITHUB_APP_ID": "12", "GITHUB_APP_INSTALLATION_ID": "77", "GITHUB_APP_PRIVATE_KEY_FILE": writeKey(t), "GITHUB_API_URL": srv2.URL,
	}})
	r = in2.Do("GET", "/admin/github-installation-token", in2.Admin, nil)
	if r.Status != 500 || strings.Contains(string(r.Body), "exploded") || r.Map(t)["request_id"] == "" {
		t.Fatalf("provider error: %d %s", r.Status, r.Body)
	}
	if !strings.Contains(r.Map(t)["error"].(string), "GitHub installation token") {
		t.Errorf("message %s", r.Body)
	}
	if strings.Contains(logs.String(), "ghs_SECRET_TOKEN_123") {
		t.Errorf("the token was logged")
	}

	// Without a provider: 404.
	in3 := apptest.Start(t, apptest.Options{})
	if r := in3.Do("GET", "/admin/github-installation-token", in3.Admin, nil); r.Status != 404 {
		t.Errorf("no provider: %d %s", r.Status, r.Body)
	}
	id3, tok3 := in3.CreateWorkspaceRow("x", nil)
	if r := in3.Do("GET", "/workspaces/"+id3.String()+"/github-installation-token", tok3, nil); r.Status != 404 {
		t.Errorf("no provider (workspace): %d %s", r.Status, r.Body)
	}
}

func TestTemplatesImport(t *testing.T) {
	dir := t.TempDir()
	in := apptest.Start(t, apptest.Options{Env: map[string]string{"MOLECULE_TEMPLATES_DIR": dir}})
	_, wsTok := in.CreateWorkspaceRow("w", nil)

	if r := in.Do("GET", "/templates", in.Admin, nil); r.Status != 200 || !strings.Contains(string(r.Body), `"templates":[]`) {
		t.Fatalf("empty list: %d %s", r.Status, r.Body)
	}
	files := map[string]string{
		"system-prompt.md":                          "You are careful.",
		"prompts/daily.md":                          "Standup.",
		"skills/legit\nruntime: malicious/SKILL.md": "evil",
		"skills/review/SKILL.md":                    "Review code.",
		"skills/review/notes.txt":                   "n",
	}
	r := in.Do("POST", "/templates/import", in.Admin, map[string]any{"name": "reviewer", "files": files})
	if r.Status != 201 {
		t.Fatalf("import: %d %s", r.Status, r.Body)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "reviewer", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	for k := range cfg {
		if k != "name" && k != "template" && k != "skills" && k != "prompt_files" {
			t.Errorf("file names added key %q:\n%s", k, raw)
		}
	}
	if cfg["runtime"] != nil {
		t.Errorf("runtime injected: %v", cfg["runtime"])
	}
	skills, _ := cfg["skills"].([]any)
	if len(skills) != 2 || skills[0] != "legit\nruntime: malicious" || skills[1] != "review" {
		t.Errorf("skills %v", skills)
	}
	if p, _ := cfg["prompt_files"].([]any); len(p) != 1 || p[0] != "prompts/daily.md" {
		t.Errorf("prompt_files %v", p)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "reviewer", "skills", "review", "SKILL.md")); string(b) != "Review code." {
		t.Errorf("file content %q", b)
	}
	if r := in.Do("GET", "/templates", in.Admin, nil); r.Status != 200 || !strings.Contains(string(r.Body), `"name":"reviewer"`) {
		t.Errorf("list: %d %s", r.Status, r.Body)
	}

	many := map[string]string{}
	for i := 0; i < 201; i++ {
		many["f"+strings.Repeat("x", i%5)+string(rune('a'+i%26))+"/"+time.Duration(i).String()] = "x"
	}
	bad := []struct {
		body any
		want int
	}{
		{map[string]any{"name": "reviewer", "files": map[string]string{"a.md": "x"}}, 409},
		{map[string]any{"name": "../up", "files": map[string]string{"a.md": "x"}}, 400},
		{map[string]any{"name": ".hidden", "files": map[string]string{"a.md": "x"}}, 400},
		{map[string]any{"name": "nul\x00", "files": map[string]string{"a.md": "x"}}, 400},
		{map[string]any{"name": "t1", "files": map[string]string{}}, 400},
		{map[string]any{"name": "t1", "files": many}, 400},
		{map[string]any{"name": "t1", "files": map[string]string{"../escape.md": "x"}}, 400},
		{map[string]any{"name": "t1", "files": map[string]string{"/etc/passwd": "x"}}, 400},
		{map[string]any{"name": "t1", "files": map[string]string{"a\x00b": "x"}}, 400},
		{map[string]any{"name": "t1", "files": map[string]string{"config.yaml": "runtime: x"}}, 400},
		{map[string]any{"name": "t1", "files": map[string]string{"a.md": "x", "./a.md": "y"}}, 400},
		{map[string]any{"name": 5, "files": map[string]string{"a.md": "x"}}, 400},
		{map[string]any{"name": "t1", "files": []string{"a"}}, 400},
		{"{not json", 400},
	}
	for _, c := range bad {
		var r *apptest.Response
		if s, ok := c.body.(string); ok {
			r = in.Do("POST", "/templates/import", in.Admin, s)
		} else {
			r = in.Do("POST", "/templates/import", in.Admin, c.body)
		}
		if r.Status != c.want {
			t.Errorf("import %v: %d %s, want %d", c.body, r.Status, r.Body, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "t1")); err == nil {
		t.Errorf("a rejected import left a directory")
	}
	if r := in.Do("POST", "/templates/import", wsTok, map[string]any{"name": "t2", "files": map[string]string{"a.md": "x"}}); r.Status != 403 {
		t.Errorf("workspace token: %d", r.Status)
	}
	if r := in.Do("GET", "/templates", "", nil); r.Status != 401 {
		t.Errorf("anonymous: %d", r.Status)
	}
	big := map[string]any{"name": "big", "files": map[string]string{"a.md": strings.Repeat("x", 11<<20)}}
	if r := in.Do("POST", "/templates/import", in.Admin, big); r.Status != 413 {
		t.Errorf("over the cap: %d", r.Status)
	}
}
