package githubapp

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func envFrom(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestNewFromEnvDisabled(t *testing.T) {
	for _, id := range []string{"", "   "} {
		logs := &logBuffer{}
		p, err := NewFromEnv(envFrom(map[string]string{
			EnvAppID: id, EnvInstallationID: "5", EnvPrivateKeyFile: "/nope",
		}), nil, debugLogger(logs))
		if p != nil || err != nil {
			t.Errorf("GITHUB_APP_ID=%q: got %v, %v; want nil, nil", id, p, err)
		}
		if !strings.Contains(logs.String(), EnvAppID) {
			t.Errorf("half-configured app should be logged, got %q", logs.String())
		}
	}
	if p, err := NewFromEnv(envFrom(nil), nil, nil); p != nil || err != nil {
		t.Errorf("empty env: %v, %v", p, err)
	}
}

func TestNewFromEnvValid(t *testing.T) {
	clock := newFakeClock()
	g := newFakeGitHub(t, clock.Now)
	srv := httptest.NewServer(g)
	defer srv.Close()
	for name, keyPEM := range map[string][]byte{
		"PKCS#1": pkcs1PEM(testKey()),
		"PKCS#8": pkcs8PEM(t, testKey()),
	} {
		t.Run(name, func(t *testing.T) {
			p, err := NewFromEnv(envFrom(map[string]string{
				EnvAppID:          " 4242 ",
				EnvInstallationID: "777",
				EnvPrivateKeyFile: writeFile(t, "key.pem", keyPEM),
				EnvAPIURL:         srv.URL,
			}), srv.Client(), nil)
			if err != nil || p == nil {
				t.Fatalf("NewFromEnv: %v, %v", p, err)
			}
			p.now = clock.Now // the fake checks iat/exp against its clock
			if _, _, err := p.Token(context.Background()); err != nil {
				t.Fatalf("Token: %v (jwt errors %v)", err, g.JWTErrors())
			}
		})
	}
	p, err := NewFromEnv(envFrom(map[string]string{
		EnvAppID: "1", EnvInstallationID: "2",
		EnvPrivateKeyFile: writeFile(t, "key.pem", pkcs1PEM(testKey())),
	}), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := DefaultAPIBaseURL + "/app/installations/2/access_tokens"; p.tokenURL != want {
		t.Errorf("default URL = %q, want %q", p.tokenURL, want)
	}
}

func TestNewFromEnvInvalid(t *testing.T) {
	good := writeFile(t, "good.pem", pkcs1PEM(testKey()))
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"},
		Bytes:   []byte("ciphertext")})
	garbageDER := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte("KEYMATERIAL-not-asn1")})
	unreadable := writeFile(t, "unreadable.pem", pkcs1PEM(testKey()))
	if err := os.Chmod(unreadable, 0); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name    string
		env     map[string]string
		wantVar string
		wantErr error
		skip    bool
	}{
		{name: "non-numeric app id", env: map[string]string{EnvAppID: "my-app"}, wantVar: EnvAppID},
		{name: "zero app id", env: map[string]string{EnvAppID: "0"}, wantVar: EnvAppID},
		{name: "negative app id", env: map[string]string{EnvAppID: "-3"}, wantVar: EnvAppID},
		{name: "overflowing app id", env: map[string]string{EnvAppID: "99999999999999999999"}, wantVar: EnvAppID},
		{name: "missing installation id", env: map[string]string{EnvAppID: "1", EnvPrivateKeyFile: good}, wantVar: EnvInstallationID},
		{name: "non-numeric installation id", env: map[string]string{EnvAppID: "1", EnvInstallationID: "12a", EnvPrivateKeyFile: good}, wantVar: EnvInstallationID},
		{name: "missing key file variable", env: map[string]string{EnvAppID: "1", EnvInstallationID: "2"}, wantVar: EnvPrivateKeyFile},
		{name: "key file does not exist", env: map[string]string{EnvAppID: "1", EnvInstallationID: "2",
			EnvPrivateKeyFile: filepath.Join(t.TempDir(), "missing.pem")}, wantVar: EnvPrivateKeyFile, wantErr: os.ErrNotExist},
		{name: "key file is a directory", env: map[string]string{EnvAppID: "1", EnvInstallationID: "2",
			EnvPrivateKeyFile: t.TempDir()}, wantVar: EnvPrivateKeyFile},
		{name: "key file unreadable", env: map[string]string{EnvAppID: "1", EnvInstallationID: "2",
			EnvPrivateKeyFile: unreadable}, wantVar: EnvPrivateKeyFile, wantErr: os.ErrPermission, skip: os.Geteuid() == 0},
		{name: "empty key file", env: map[string]string{EnvAppID: "1", EnvInstallationID: "2",
			EnvPrivateKeyFile: writeFile(t, "empty.pem", nil)}, wantVar: EnvPrivateKeyFile, wantErr: errNoPEM},
		{name: "not PEM", env: map[string]string{EnvAppID: "1", EnvInstallationID: "2",
			EnvPrivateKeyFile: writeFile(t, "x.pem", []byte("KEYMATERIAL just text"))}, wantVar: EnvPrivateKeyFile, wantErr: errNoPEM},
		{name: "PEM but not a key", env: map[string]string{EnvAppID: "1", EnvInstallationID: "2",
			EnvPrivateKeyFile: writeFile(t, "bad.pem", garbageDER)}, wantVar: EnvPrivateKeyFile, wantErr: errBadKey},
		{name: "encrypted key", env: map[string]string{EnvAppID: "1", EnvInstallationID: "2",
			EnvPrivateKeyFile: writeFile(t, "enc.pem", encrypted)}, wantVar: EnvPrivateKeyFile, wantErr: errEncrypted},
		{name: "EC key", env: map[string]string{EnvAppID: "1", EnvInstallationID: "2",
			EnvPrivateKeyFile: writeFile(t, "ec.pem", pkcs8PEM(t, ecKey))}, wantVar: EnvPrivateKeyFile, wantErr: errNotRSA},
		{name: "Ed25519 key", env: map[string]string{EnvAppID: "1", EnvInstallationID: "2",
			EnvPrivateKeyFile: writeFile(t, "ed.pem", pkcs8PEM(t, edKey))}, wantVar: EnvPrivateKeyFile, wantErr: errNotRSA},
		{name: "public key instead of private", env: map[string]string{EnvAppID: "1", EnvInstallationID: "2",
			EnvPrivateKeyFile: writeFile(t, "pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{0x30, 0x00}}))},
			wantVar: EnvPrivateKeyFile, wantErr: errBadKey},
		{name: "API URL not http", env: map[string]string{EnvAppID: "1", EnvInstallationID: "2", EnvPrivateKeyFile: good,
			EnvAPIURL: "ftp://github.example"}, wantVar: EnvAPIURL},
		{name: "API URL relative", env: map[string]string{EnvAppID: "1", EnvInstallationID: "2", EnvPrivateKeyFile: good,
			EnvAPIURL: "api.github.com"}, wantVar: EnvAPIURL},
		{name: "API URL with credentials", env: map[string]string{EnvAppID: "1", EnvInstallationID: "2", EnvPrivateKeyFile: good,
			EnvAPIURL: "https://user:pw@github.example"}, wantVar: EnvAPIURL},
		{name: "API URL unparsable", env: map[string]string{EnvAppID: "1", EnvInstallationID: "2", EnvPrivateKeyFile: good,
			EnvAPIURL: "https://exa mple.com/%zz"}, wantVar: EnvAPIURL},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.skip {
				// Root reads any file, so "unreadable" cannot be staged here
				// (CI runs as root); the read failure is still proven by
				// "key file is a directory".
				if _, err := os.ReadFile(unreadable); err == nil {
					return
				}
				t.Fatal("the unreadable fixture is unreadable even to this user: the case must run")
			}
			p, err := NewFromEnv(envFrom(tc.env), nil, nil)
			if p != nil || err == nil {
				t.Fatalf("got %v, %v; want an error", p, err)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.wantVar {
				t.Fatalf("err = %v, want a ConfigError for %s", err, tc.wantVar)
			}
			if !strings.Contains(err.Error(), tc.wantVar) {
				t.Errorf("message %q does not name %s", err.Error(), tc.wantVar)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "KEYMATERIAL") || strings.Contains(err.Error(), "ciphertext") ||
				strings.Contains(err.Error(), "pw@") {
				t.Errorf("message leaks file content or credentials: %q", err.Error())
			}
		})
	}
}

func TestNewConfigValidation(t *testing.T) {
	keyPEM := pkcs1PEM(testKey())
	cases := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"zero app id", Config{InstallationID: 1, PrivateKeyPEM: keyPEM}, "AppID"},
		{"zero installation", Config{AppID: 1, PrivateKeyPEM: keyPEM}, "InstallationID"},
		{"no key", Config{AppID: 1, InstallationID: 1}, "PrivateKeyFile"},
		{"bad PEM bytes", Config{AppID: 1, InstallationID: 1, PrivateKeyPEM: []byte("nope")}, "PrivateKeyPEM"},
		{"bad base URL", Config{AppID: 1, InstallationID: 1, PrivateKeyPEM: keyPEM, APIBaseURL: "/relative"}, "APIBaseURL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field {
				t.Errorf("err = %v, want ConfigError on %s", err, tc.field)
			}
		})
	}
}
