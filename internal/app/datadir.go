package app

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moleculesai/molecule/internal/auth"
)

// loadOrCreateAdminToken returns the admin token stored in dir, creating it
// (mode 0600) on first start. Creation uses O_EXCL so replicas sharing a
// data directory agree on one token. The token itself is never logged.
func loadOrCreateAdminToken(dir string) (token, path string, created bool, err error) {
	path = filepath.Join(dir, "admin_token")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", path, false, fmt.Errorf("MOLECULE_DATA_DIR: create %s: %w", dir, err)
	}
	if data, err := os.ReadFile(path); err == nil {
		token = strings.TrimSpace(string(data))
		if len(token) < 32 {
			return "", path, false, fmt.Errorf("admin token file %s is too short (expected a generated token)", path)
		}
		return token, path, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", path, false, fmt.Errorf("read %s: %w", path, err)
	}
	token, _, _ = auth.NewToken()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Another replica won the race; use its token.
		return loadOrCreateAdminToken(dir)
	}
	if err != nil {
		return "", path, false, fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.WriteString(token + "\n"); err != nil {
		f.Close()
		return "", path, false, fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", path, false, fmt.Errorf("write %s: %w", path, err)
	}
	return token, path, true, nil
}
