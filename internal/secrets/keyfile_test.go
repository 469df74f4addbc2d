package secrets

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreateKeyFileCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "nested")
	path := filepath.Join(dir, "secrets.key")

	key, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatalf("LoadOrCreateKeyFile: %v", err)
	}
	if len(key) != KeySize {
		t.Fatalf("key is %d bytes", len(key))
	}
	if bytes.Equal(key, make([]byte, KeySize)) {
		t.Fatal("key is all zeros")
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("key file mode = %o, want 600", mode)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if mode := di.Mode().Perm(); mode != 0o700 {
		t.Errorf("key directory mode = %o, want 700", mode)
	}

	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := base64.StdEncoding.EncodeToString(key) + "\n"; string(content) != want {
		t.Errorf("file content is not the base64 key plus newline")
	}

	again, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatalf("second load: %v", err)
	}
	if !bytes.Equal(again, key) {
		t.Fatal("second load returned a different key")
	}

	// No temp files are left behind.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only the key file", names)
	}
}

func TestLoadOrCreateKeyFileReadsOperatorKey(t *testing.T) {
	dir := t.TempDir()
	raw := "0123456789abcdefghijklmnopqrstuv"
	want := testKey(5)
	files := map[string][]byte{
		"raw.key":    []byte(raw),
		"url.key":    []byte(base64.RawURLEncoding.EncodeToString(want) + "\r\n"),
		"padded.key": []byte(base64.StdEncoding.EncodeToString(want)),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := LoadOrCreateKeyFile(filepath.Join(dir, "raw.key")); err != nil || string(got) != raw {
		t.Errorf("raw key: got %q, %v", got, err)
	}
	for _, name := range []string{"url.key", "padded.key"} {
		if got, err := LoadOrCreateKeyFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: got %x, %v", name, got, err)
		}
	}
}

func TestLoadOrCreateKeyFileRejectsBadFile(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"short.key":   "too short",
		"garbage.key": strings.Repeat("not base64! ", 8),
		"wrong.key":   base64.StdEncoding.EncodeToString(make([]byte, 48)),
	}
	for name, content := range cases {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreateKeyFile(path)
		if !errors.Is(err, ErrInvalidKey) {
			t.Errorf("%s: err = %v, want ErrInvalidKey", name, err)
			continue
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error should name the file: %v", name, err)
		}
		if strings.Contains(err.Error(), content) {
			t.Errorf("%s: error echoes the content: %v", name, err)
		}
		// The bad file is left for the operator, not replaced by a new key.
		if b, _ := os.ReadFile(path); string(b) != content {
			t.Errorf("%s: file was modified", name)
		}
	}
}

func TestLoadOrCreateKeyFileUnreadable(t *testing.T) {
	dir := t.TempDir()
	// A directory where the file should be: an error, not a new key.
	path := filepath.Join(dir, "key")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKeyFile(path); err == nil {
		t.Fatal("a directory at the key path should be an error")
	}
	// A parent that is a file cannot be created.
	parentFile := filepath.Join(dir, "file")
	if err := os.WriteFile(parentFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKeyFile(filepath.Join(parentFile, "key")); err == nil {
		t.Fatal("a key under a regular file should be an error")
	}
}

func TestLoadOrCreateKeyFileConcurrentCreators(t *testing.T) {
	for round := 0; round < 20; round++ {
		path := filepath.Join(t.TempDir(), "d", "secrets.key")
		const n = 16
		keys := make([][]byte, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				keys[i], errs[i] = LoadOrCreateKeyFile(path)
			}()
		}
		close(start)
		wg.Wait()
		for i := 0; i < n; i++ {
			if errs[i] != nil {
				t.Fatalf("round %d creator %d: %v", round, i, errs[i])
			}
			if !bytes.Equal(keys[i], keys[0]) {
				t.Fatalf("round %d: creators %d and 0 ended with different keys", round, i)
			}
		}
		onDisk, err := LoadOrCreateKeyFile(path)
		if err != nil || !bytes.Equal(onDisk, keys[0]) {
			t.Fatalf("round %d: file holds a different key than the creators returned", round)
		}
	}
}

// noHardLinks behaves like a file system without hard links (EPERM).
func noHardLinks(oldname, newname string) error {
	return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: os.ErrPermission}
}

func TestLoadOrCreateKeyFileWithoutHardLinks(t *testing.T) {
	for round := 0; round < 20; round++ {
		dir := filepath.Join(t.TempDir(), "d")
		path := filepath.Join(dir, "secrets.key")
		const n = 8
		keys := make([][]byte, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				keys[i], errs[i] = loadOrCreateKeyFile(path, noHardLinks)
			}()
		}
		close(start)
		wg.Wait()
		for i := 0; i < n; i++ {
			if errs[i] != nil {
				t.Fatalf("round %d creator %d: %v", round, i, errs[i])
			}
			if !bytes.Equal(keys[i], keys[0]) {
				t.Fatalf("round %d: creators %d and 0 ended with different keys", round, i)
			}
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("key file mode = %o, want 600", mode)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 {
			t.Errorf("round %d: %d entries left in the directory, want 1", round, len(entries))
		}
	}
}
