package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func envMap(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDispatchVersionAndUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := dispatch(context.Background(), []string{"version"}, nil, &out, &errOut, envMap(nil)); code != 0 ||
		out.String() != "molecule-agent dev\n" {
		t.Errorf("version: %d %q", code, out.String())
	}
	out.Reset()
	if code := dispatch(context.Background(), []string{"frobnicate"}, nil, &out, &errOut, envMap(nil)); code != 2 ||
		!strings.Contains(errOut.String(), "unknown command") || out.Len() != 0 {
		t.Errorf("unknown: %d %q", code, errOut.String())
	}
	out.Reset()
	if code := dispatch(context.Background(), []string{"help"}, nil, &out, &errOut, envMap(nil)); code != 0 || !strings.Contains(out.String(), "git-credential") {
		t.Errorf("help: %d %q", code, out.String())
	}
}

func TestDispatchRunRejectsBadEnv(t *testing.T) {
	var out, errOut bytes.Buffer
	code := dispatch(context.Background(), []string{"run"}, nil, &out, &errOut, envMap(map[string]string{
		"WORKSPACE_CONFIG_PATH": t.TempDir(), "HEARTBEAT_INTERVAL": "often",
	}))
	if code != 1 || !strings.Contains(errOut.String(), "HEARTBEAT_INTERVAL") {
		t.Errorf("code %d, log %q", code, errOut.String())
	}
}

func TestDispatchGitCredential(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".auth_token"), []byte("wtok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/workspaces/ws-1/github-installation-token" || r.Header.Get("Authorization") != "Bearer wtok" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		_, _ = w.Write([]byte(`{"token":"ghs_1"}`))
	}))
	defer srv.Close()
	env := map[string]string{"WORKSPACE_ID": "ws-1", "MOLECULE_URL": srv.URL, "WORKSPACE_CONFIG_PATH": dir,
		"HEARTBEAT_INTERVAL": "not-a-duration"} // irrelevant to git-credential
	var out, errOut bytes.Buffer
	code := dispatch(context.Background(), []string{"git-credential", "get"}, strings.NewReader("protocol=https\nhost=github.com\n\n"), &out, &errOut, envMap(env))
	if code != 0 || out.String() != "username=x-access-token\npassword=ghs_1\n" {
		t.Errorf("get: %d %q %q", code, out.String(), errOut.String())
	}

	for name, e := range map[string]map[string]string{
		"no platform": {"WORKSPACE_ID": "ws-1", "WORKSPACE_CONFIG_PATH": dir},
		"no token":    {"WORKSPACE_ID": "ws-1", "PLATFORM_URL": srv.URL, "WORKSPACE_CONFIG_PATH": t.TempDir()},
		"wrong id":    {"WORKSPACE_ID": "ws-2", "PLATFORM_URL": srv.URL, "WORKSPACE_CONFIG_PATH": dir},
	} {
		out.Reset()
		code := dispatch(context.Background(), []string{"git-credential", "get"}, strings.NewReader("protocol=https\nhost=github.com\n"), &out, &errOut, envMap(e))
		if code != 0 || out.Len() != 0 {
			t.Errorf("%s: %d %q", name, code, out.String())
		}
	}
	out.Reset()
	if code := dispatch(context.Background(), []string{"git-credential", "store"}, strings.NewReader("host=github.com\npassword=x\n"), &out, &errOut, envMap(env)); code != 0 || out.Len() != 0 {
		t.Errorf("store: %d %q", code, out.String())
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// TestRunEndToEnd boots the agent against a fake platform and a fake
// Anthropic API: it registers, answers an A2A call with usage, and its
// heartbeats carry the metered spend.
func TestRunEndToEnd(t *testing.T) {
	dir, home := t.TempDir(), t.TempDir()
	files := map[string]string{
		".auth_token":      "wtok\n",
		"config.yaml":      "name: Builder\nrole: builds things\nskills: [\"go\"]\nmodel: claude-test\nextra: ignored\n",
		"system-prompt.md": "You build.",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	anthropic := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		if r.URL.Path != "/v1/messages" || r.Header.Get("x-api-key") != "sk-e2e" || body["model"] != "claude-test" || body["system"] != "You build." {
			t.Errorf("anthropic request %s %v", r.URL.Path, body)
		}
		_, _ = io.WriteString(w, `{"content":[{"type":"text","text":"built"}],"usage":{"input_tokens":1000000,"output_tokens":0}}`)
	}))
	defer anthropic.Close()

	registered := make(chan map[string]any, 4)
	beats := make(chan map[string]any, 64)
	plat := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer wtok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		switch r.URL.Path {
		case "/registry/register":
			registered <- body
		case "/registry/heartbeat":
			select {
			case beats <- body:
			default:
			}
		default:
			w.WriteHeader(http.StatusNotFound)
			return
		}
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	}))
	defer plat.Close()

	addr := freeAddr(t)
	env := map[string]string{
		"WORKSPACE_ID": "ws-1", "PLATFORM_URL": plat.URL, "WORKSPACE_CONFIG_PATH": dir,
		"AGENT_LISTEN": addr, "AGENT_URL": "http://" + addr, "HEARTBEAT_INTERVAL": "20ms",
		"HOME": home, "ANTHROPIC_API_KEY": "sk-e2e", "ANTHROPIC_BASE_URL": anthropic.URL,
	}
	var logs bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- dispatch(ctx, nil, nil, io.Discard, &syncWriter{w: &logs}, envMap(env)) }()

	var reg map[string]any
	select {
	case reg = <-registered:
	case <-time.After(10 * time.Second):
		t.Fatal("agent never registered")
	}
	card, _ := reg["agent_card"].(map[string]any)
	if reg["id"] != "ws-1" || reg["url"] != "http://"+addr || card["name"] != "Builder" || card["description"] != "builds things" {
		t.Errorf("register body = %v", reg)
	}

	body := `{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"role":"user","messageId":"m","parts":[{"kind":"text","text":"build it"}]}}}`
	resp, err := http.Post("http://"+addr+"/", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(raw), `"text":"built"`) || !strings.Contains(string(raw), `"usage":{"input_tokens":1000000,"output_tokens":0}`) {
		t.Errorf("a2a answer = %s", raw)
	}

	deadline := time.After(10 * time.Second)
	for spent := false; !spent; {
		select {
		case hb := <-beats:
			if hb["workspace_id"] != "ws-1" {
				t.Fatalf("heartbeat = %v", hb)
			}
			spent = hb["monthly_spend"] == float64(300) // 1M input tokens at $3/M
		case <-deadline:
			t.Fatal("no heartbeat reported the spend")
		}
	}

	gitcfg, err := os.ReadFile(filepath.Join(home, ".gitconfig"))
	if err != nil || !strings.Contains(string(gitcfg), "helper = /molecule-agent git-credential") {
		t.Errorf(".gitconfig = %q, %v", gitcfg, err)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code %d, logs %s", code, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("agent did not stop")
	}
	if strings.Contains(logs.String(), "sk-e2e") || strings.Contains(logs.String(), "wtok") {
		t.Error("a secret reached the logs")
	}
}

// syncWriter serialises log writes from the agent's goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
