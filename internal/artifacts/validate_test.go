package artifacts

import (
	"errors"
	"strings"
	"testing"
)

func TestValidRepoName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"Z", true},
		{"0", true},
		{"molecule-ws-3f2a9c1e-8b7d-4e6f-a5c4-1d2e3f4a5b6c", true},
		{"repo_name-2", true},
		{"a" + strings.Repeat("b", 62), true},  // 63 characters
		{"a" + strings.Repeat("b", 63), false}, // 64 characters
		{"", false},
		{"-leading-dash", false},
		{"_leading_underscore", false},
		{"has space", false},
		{"dot.name", false},
		{"slash/name", false},
		{"..", false},
		{"trailing-newline\n", false},
		{"\nleading-newline", false},
		{"tab\tname", false},
		{"percent%2F", false},
		{"ünïcode", false},
		{"semi;colon", false},
		{"null\x00byte", false},
	}
	for _, tc := range tests {
		if got := ValidRepoName(tc.name); got != tc.ok {
			t.Errorf("ValidRepoName(%q) = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

func TestDefaultRepoName(t *testing.T) {
	id := "3f2a9c1e-8b7d-4e6f-a5c4-1d2e3f4a5b6c"
	got := DefaultRepoName(id)
	if got != "molecule-ws-"+id {
		t.Fatalf("DefaultRepoName = %q", got)
	}
	if !ValidRepoName(got) {
		t.Errorf("default name %q fails the explicit-name rule", got)
	}
}

func TestValidateImportURL(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"https://github.com/org/repo.git", true},
		{"https://github.com/org/repo", true},
		{"HTTPS://GitHub.com/org/repo.git", true},
		{"https://git.example.com:8443/team/repo.git", true},
		{"https://[2001:db8::1]/repo.git", true},
		{"https://gitlab.com/group/sub/repo.git?ref=main", true},

		{"", false},
		{"http://github.com/org/repo.git", false},
		{"git://github.com/org/repo.git", false},
		{"ssh://git@github.com/org/repo.git", false},
		{"git+ssh://github.com/org/repo.git", false},
		{"file:///etc/passwd", false},
		{"file://localhost/etc/passwd", false},
		{"ftp://example.com/repo", false},
		{"ext::sh -c touch% /tmp/pwned", false},
		{"git@github.com:org/repo.git", false},
		{"github.com/org/repo.git", false},
		{"//github.com/org/repo.git", false},
		{"/local/path/repo.git", false},
		{"https:github.com/org/repo", false},
		{"https://", false},
		{"https:///org/repo.git", false},
		{"https://:443/org/repo.git", false},
		{"https://@/repo.git", false},
		{"https://user@", false},
		{"https://user:secret@github.com/org/repo.git", false},
		{"https://github.com@evil.example/repo.git", false},
		{"https://:@evil.example/repo.git", false},
		{"https://github.com:0/repo.git", false},
		{"https://github.com:99999/repo.git", false},
		{"https://github.com:abc/repo.git", false},
		{" https://github.com/org/repo.git", false},
		{"https://github.com/org/repo.git\n", false},
		{"https://git hub.com/repo", false},
		{"https://" + strings.Repeat("a", 2050) + ".com/", false},
	}
	for _, tc := range tests {
		err := ValidateImportURL(tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateImportURL(%q) = %v, want ok=%v", tc.url, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("ValidateImportURL(%q) error %v does not wrap ErrInvalidArgument", tc.url, err)
		}
	}
}

func TestValidateImportURLDoesNotEchoSecrets(t *testing.T) {
	err := ValidateImportURL("https://user:hunter2@github.com/org/repo.git")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("err = %v", err)
	}
	err = ValidateImportURL("https://user:hunter2@git hub.com/")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("parse error echoed the input: %v", err)
	}
}

func TestStripCredentials(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"https://x:tok@artifacts.example/ns/repo.git", "https://artifacts.example/ns/repo.git"},
		{"https://tok@artifacts.example/ns/repo.git", "https://artifacts.example/ns/repo.git"},
		{"https://x:@artifacts.example/repo.git", "https://artifacts.example/repo.git"},
		{"https://@artifacts.example/repo.git", "https://artifacts.example/repo.git"},
		{"https://x:p%40ss@artifacts.example:8443/a/b.git?x=1", "https://artifacts.example:8443/a/b.git?x=1"},
		{"https://artifacts.example/ns/repo.git", "https://artifacts.example/ns/repo.git"},
		{"https://artifacts.example/a%20b/repo.git", "https://artifacts.example/a%20b/repo.git"},
		{"", ""},
		// Unparseable input is dropped rather than stored with a secret.
		{"https://x:tok@host with space/repo.git", ""},
		{"git@github.com:org/repo.git", ""},
		{"https://x:tok\n@artifacts.example/repo.git", ""},
	}
	for _, tc := range tests {
		got := StripCredentials(tc.in)
		if got != tc.want {
			t.Errorf("StripCredentials(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.Contains(got, "tok") || strings.Contains(got, "p%40ss") {
			t.Errorf("StripCredentials(%q) kept a secret: %q", tc.in, got)
		}
	}
}

func TestValidScope(t *testing.T) {
	for s, ok := range map[string]bool{
		"read": true, "write": true,
		"": false, "READ": false, "admin": false, "read ": false, "readwrite": false,
	} {
		if ValidScope(s) != ok {
			t.Errorf("ValidScope(%q) = %v, want %v", s, !ok, ok)
		}
	}
}
