package app_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moleculesai/molecule/internal/app"
	"github.com/moleculesai/molecule/internal/config"
	"github.com/moleculesai/molecule/internal/testutil"
)

func load(t *testing.T, env map[string]string) (*config.Config, error) {
	t.Helper()
	return config.Load(config.FromMap(env))
}

// Start-up refuses a bad DATABASE_URL, a malformed SECRETS_ENCRYPTION_KEY
// and an unknown MOLECULE_PROVISIONER, each naming the variable.
func TestStartupRefusesBadConfiguration(t *testing.T) {
	dsn := testutil.NewDatabase(t)
	log := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))

	if _, err := load(t, map[string]string{"DATABASE_URL": dsn, "MOLECULE_PROVISIONER": "swarm"}); err == nil ||
		!strings.Contains(err.Error(), "MOLECULE_PROVISIONER") {
		t.Fatalf("unknown provisioner: %v", err)
	}
	if _, err := load(t, map[string]string{"DATABASE_URL": "not a url"}); err == nil ||
		!strings.Contains(err.Error(), "DATABASE_URL") {
		t.Fatalf("malformed DATABASE_URL: %v", err)
	}

	// Well-formed but unreachable: refused at start, naming the variable.
	cfg, err := load(t, map[string]string{
		"DATABASE_URL":      "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2",
		"MOLECULE_DATA_DIR": t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.New(context.Background(), cfg, log); err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Fatalf("unreachable database: %v", err)
	}

	for _, key := range []string{"too-short", "!!!!not-base64-and-not-32-bytes!!!!!!!", "c2hvcnQ="} {
		cfg, err := load(t, map[string]string{"DATABASE_URL": dsn, "SECRETS_ENCRYPTION_KEY": key, "MOLECULE_DATA_DIR": t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		_, err = app.New(context.Background(), cfg, log)
		if err == nil || !strings.Contains(err.Error(), "SECRETS_ENCRYPTION_KEY") {
			t.Fatalf("key %q: %v", key, err)
		}
		if strings.Contains(err.Error(), key) {
			t.Fatalf("the error echoes the key value: %v", err)
		}
	}
}

// The first start generates the admin token and the secrets key (0600) in
// the data directory, logs the token file's path and never the token; the
// next start reuses them.
func TestDataDirGeneratesCredentialsOnce(t *testing.T) {
	dsn := testutil.NewDatabase(t)
	dir := filepath.Join(t.TempDir(), "data")
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg, err := load(t, map[string]string{"DATABASE_URL": dsn, "MOLECULE_DATA_DIR": dir})
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	token := a.AdminToken()
	a.Close()
	if len(token) < 32 {
		t.Fatalf("generated token too short: %d", len(token))
	}
	for _, name := range []string{"admin_token", "secrets.key"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, st.Mode().Perm())
		}
	}
	if strings.Contains(logs.String(), token) {
		t.Fatal("the admin token appeared in the log")
	}
	if !strings.Contains(logs.String(), "admin_token") {
		t.Fatal("the admin token file's path was not logged")
	}
	b, err := app.New(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.AdminToken() != token {
		t.Fatal("second start generated a different admin token")
	}
}
