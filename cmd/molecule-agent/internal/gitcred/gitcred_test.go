package gitcred

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moleculesai/molecule/cmd/molecule-agent/internal/platform"
)

const gitInput = "protocol=https\nhost=github.com\npath=org/repo.git\n\n"

// fakeTokenAPI serves GET /workspaces/:id/github-installation-token.
func fakeTokenAPI(t *testing.T, status int, body string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Method != http.MethodGet || r.URL.Path != "/workspaces/ws-1/github-installation-token" {
			t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
		}
		if r.Header.Get("Authorization") != "Bearer wtok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func client(base string) *platform.Client {
	return &platform.Client{BaseURL: base, WorkspaceID: "ws-1", Token: func() (string, error) { return "wtok", nil }}
}

func TestGetSuccess(t *testing.T) {
	srv, _ := fakeTokenAPI(t, 200, `{"token":"ghs_secret","expires_at":"2026-01-02T03:04:05Z"}`)
	var out bytes.Buffer
	Run(context.Background(), "get", strings.NewReader(gitInput), &out, client(srv.URL), nil, time.Second)
	want := "username=x-access-token\npassword=ghs_secret\npassword_expiry_utc=1767323045\n"
	if out.String() != want {
		t.Errorf("output = %q, want %q", out.String(), want)
	}
}

func TestGetWithoutExpiry(t *testing.T) {
	srv, _ := fakeTokenAPI(t, 200, `{"token":"ghs_x"}`)
	var out bytes.Buffer
	Run(context.Background(), "get", strings.NewReader("host=GitHub.com:443\n"), &out, client(srv.URL), nil, time.Second)
	if out.String() != "username=x-access-token\npassword=ghs_x\n" {
		t.Errorf("output = %q", out.String())
	}
}

func TestGetPrintsNothingOnFailure(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
	}{
		{"404 no provider", 404, `{"error":"not found","code":"not_found"}`},
		{"500", 500, `{"error":"internal error"}`},
		{"502", 502, ``},
		{"bad json", 200, `{"token":`},
		{"empty token", 200, `{"token":""}`},
		{"token with newline", 200, `{"token":"a\nhost=evil.com"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, calls := fakeTokenAPI(t, tc.status, tc.body)
			var out bytes.Buffer
			Run(context.Background(), "get", strings.NewReader(gitInput), &out, client(srv.URL), nil, time.Second)
			if out.Len() != 0 || calls.Load() != 1 {
				t.Errorf("output %q, calls %d", out.String(), calls.Load())
			}
		})
	}
}

func TestGetUnreachableAndTimeout(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	base := dead.URL
	dead.Close()
	var out bytes.Buffer
	Run(context.Background(), "get", strings.NewReader(gitInput), &out, client(base), nil, time.Second)
	if out.Len() != 0 {
		t.Errorf("unreachable: %q", out.String())
	}

	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	start := time.Now()
	Run(context.Background(), "get", strings.NewReader(gitInput), &out, client(slow.URL), nil, 50*time.Millisecond)
	if out.Len() != 0 {
		t.Errorf("timeout: %q", out.String())
	}
	if time.Since(start) > 5*time.Second {
		t.Error("timeout not honoured")
	}
}

func TestGetSkipsWithoutAsking(t *testing.T) {
	cases := map[string]string{
		"other host":     "protocol=https\nhost=gitlab.com\n",
		"lookalike host": "protocol=https\nhost=github.com.evil.io\n",
		"no host":        "protocol=https\n",
		"plain http":     "protocol=http\nhost=github.com\n",
		"ssh":            "protocol=ssh\nhost=github.com\n",
		"garbage":        "this is not a credential request",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			srv, calls := fakeTokenAPI(t, 200, `{"token":"ghs_x"}`)
			var out bytes.Buffer
			Run(context.Background(), "get", strings.NewReader(in), &out, client(srv.URL), nil, time.Second)
			if out.Len() != 0 || calls.Load() != 0 {
				t.Errorf("output %q, platform calls %d", out.String(), calls.Load())
			}
		})
	}
}

func TestExtraHostsAndNilGetter(t *testing.T) {
	srv, _ := fakeTokenAPI(t, 200, `{"token":"ghs_ghe"}`)
	var out bytes.Buffer
	Run(context.Background(), "get", strings.NewReader("protocol=https\nhost=git.corp.example\n"), &out,
		client(srv.URL), Hosts{"git.corp.example"}, time.Second)
	if !strings.Contains(out.String(), "password=ghs_ghe\n") {
		t.Errorf("GHE host: %q", out.String())
	}
	out.Reset()
	Run(context.Background(), "get", strings.NewReader(gitInput), &out, nil, nil, time.Second)
	if out.Len() != 0 {
		t.Errorf("nil getter: %q", out.String())
	}
}

func TestStoreEraseAreNoOps(t *testing.T) {
	for _, action := range []string{"store", "erase", "", "bogus"} {
		srv, calls := fakeTokenAPI(t, 200, `{"token":"ghs_x"}`)
		var out bytes.Buffer
		Run(context.Background(), action, strings.NewReader(gitInput+"username=u\npassword=p\n"), &out, client(srv.URL), nil, time.Second)
		if out.Len() != 0 || calls.Load() != 0 {
			t.Errorf("%q: output %q, calls %d", action, out.String(), calls.Load())
		}
	}
}

func TestParseRequest(t *testing.T) {
	r := ParseRequest(strings.NewReader("protocol=https\r\nhost=github.com\nnoequals\nwwwauth[]=Basic\n\nhost=late.example\n"))
	if r.Protocol != "https" || r.Host != "github.com" {
		t.Errorf("got %+v (must stop at the blank line)", r)
	}
}

func TestEnsureGitConfig(t *testing.T) {
	home := t.TempDir()
	path, err := EnsureGitConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "[credential]\n\thelper = /molecule-agent git-credential\n") {
		t.Errorf("new config = %q", b)
	}
	if _, err := EnsureGitConfig(home); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(path)
	if string(again) != string(b) {
		t.Errorf("second run changed the file: %q", again)
	}

	home2 := t.TempDir()
	existing := "[user]\n\tname = Someone"
	if err := os.WriteFile(filepath.Join(home2, ".gitconfig"), []byte(existing), 0o644); err != nil {
		t.Fatal(err)
	}
	path2, err := EnsureGitConfig(home2)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := os.ReadFile(path2)
	if !strings.HasPrefix(string(b2), existing+"\n") || !strings.Contains(string(b2), "helper = "+HelperCommand) {
		t.Errorf("merged config = %q", b2)
	}

	// A .gitconfig that is a directory can't be read as a file.
	home3 := t.TempDir()
	_ = os.Mkdir(filepath.Join(home3, ".gitconfig"), 0o755)
	if _, err := EnsureGitConfig(home3); err == nil {
		t.Error("want error when .gitconfig is unreadable")
	}
}

func TestPickHome(t *testing.T) {
	good := t.TempDir()
	file := filepath.Join(good, "afile")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// A path under a regular file can never be created.
	bad := filepath.Join(file, "sub")
	if got, ok := PickHome(bad, "", good); !ok || got != good {
		t.Errorf("PickHome = %q, %v", got, ok)
	}
	if got, ok := PickHome("", good); !ok || got != good {
		t.Errorf("empty HOME: %q, %v", got, ok)
	}
	if _, ok := PickHome(bad); ok {
		t.Error("no writable candidate must report false")
	}
	entries, _ := os.ReadDir(good)
	if len(entries) != 1 {
		t.Errorf("write probe left files behind: %v", entries)
	}
}
