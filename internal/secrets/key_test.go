package secrets

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// testKey returns a deterministic 32-byte key whose bytes all differ per seed
// and include values that exercise both base64 alphabets' special characters.
func testKey(seed byte) []byte {
	k := make([]byte, KeySize)
	for i := range k {
		k[i] = seed + byte(i*7) + 0xf8
	}
	return k
}

func TestParseKey(t *testing.T) {
	key := testKey(1)
	std := base64.StdEncoding.EncodeToString(key)
	if !strings.ContainsAny(std, "+/") {
		t.Fatalf("test key should exercise the standard alphabet, got %s", std)
	}
	raw32 := "0123456789abcdefghijklmnopqrstuv"

	tests := []struct {
		name string
		in   string
		want []byte // nil means an error is expected
	}{
		{"raw 32 bytes", raw32, []byte(raw32)},
		{"raw 32 bytes with newline", raw32 + "\n", []byte(raw32)},
		{"raw 32 binary bytes", string(key), key},
		{"std padded", std, key},
		{"std unpadded", base64.RawStdEncoding.EncodeToString(key), key},
		{"url padded", base64.URLEncoding.EncodeToString(key), key},
		{"url unpadded", base64.RawURLEncoding.EncodeToString(key), key},
		{"std with surrounding space", "  " + std + "\n", key},
		{"empty", "", nil},
		{"whitespace only", " \n\t", nil},
		{"raw 31 bytes", raw32[:31], nil},
		{"raw 33 bytes", raw32 + "w", nil},
		{"base64 of 16 bytes", base64.StdEncoding.EncodeToString(key[:16]), nil},
		{"base64 of 33 bytes", base64.StdEncoding.EncodeToString(append(bytes.Clone(key), 0)), nil},
		{"base64 of 64 bytes", base64.StdEncoding.EncodeToString(append(bytes.Clone(key), key...)), nil},
		{"hex of 32 bytes", strings.Repeat("ab", 32), nil},
		{"garbage", "this is definitely not a key!!!!!!!!!!!!!!!", nil},
		{"mixed alphabets", strings.Replace(std, std[:1], "-", 1) + "+", nil},
		{"too much padding", base64.RawStdEncoding.EncodeToString(key) + "===", nil},
		{"non-canonical trailing bits", base64.RawStdEncoding.EncodeToString(key)[:42] + "B", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKey(tt.in)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("ParseKey accepted invalid input, returned %d bytes", len(got))
				}
				if !errors.Is(err, ErrInvalidKey) {
					t.Errorf("error %v does not wrap ErrInvalidKey", err)
				}
				if trimmed := strings.TrimSpace(tt.in); len(trimmed) >= 8 && strings.Contains(err.Error(), trimmed) {
					t.Errorf("error echoes the value: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKey: %v", err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("ParseKey = %x, want %x", got, tt.want)
			}
		})
	}
}

func TestParseKeyErrorNamesLength(t *testing.T) {
	_, err := ParseKey(base64.StdEncoding.EncodeToString(make([]byte, 16)))
	if err == nil || !strings.Contains(err.Error(), "16 bytes") {
		t.Fatalf("error should say the key decodes to 16 bytes, got %v", err)
	}
}

func TestKeyID(t *testing.T) {
	id := KeyID(testKey(1))
	if len(id) != 9 || id[0] != 'k' {
		t.Fatalf("KeyID = %q, want k + 8 hex characters", id)
	}
	if strings.Trim(id[1:], "0123456789abcdef") != "" {
		t.Errorf("KeyID = %q has non-hex characters", id)
	}
	if KeyID(testKey(1)) != id {
		t.Error("KeyID is not stable")
	}
	if KeyID(testKey(2)) == id {
		t.Error("different keys should have different ids")
	}
	// SHA-256 of 32 zero bytes starts with 66687aad.
	if got := KeyID(make([]byte, 32)); got != "k66687aad" {
		t.Errorf("KeyID(zero key) = %q, want k66687aad", got)
	}
	if err := validKeyID(id); err != nil {
		t.Errorf("derived id is not a valid stored id: %v", err)
	}
}

func TestParseOldKeys(t *testing.T) {
	k1, k2 := testKey(1), testKey(2)
	b1 := base64.StdEncoding.EncodeToString(k1)
	b2 := base64.RawURLEncoding.EncodeToString(k2)

	tests := []struct {
		name    string
		in      string
		want    []Key
		wantErr bool
	}{
		{"empty", "", nil, false},
		{"spaces only", "   ", nil, false},
		{"one", "old1:" + b1, []Key{{"old1", k1}}, false},
		{"two with spaces", " old1 : " + b1 + " ,  k0a1b2c3d:" + b2 + " ", []Key{{"old1", k1}, {"k0a1b2c3d", k2}}, false},
		{"trailing comma", "old1:" + b1 + ",", []Key{{"old1", k1}}, false},
		{"no colon", b1, nil, true},
		{"empty id", ":" + b1, nil, true},
		{"id with space inside", "old 1:" + b1, nil, true},
		{"id with slash", "a/b:" + b1, nil, true},
		{"id too long", strings.Repeat("a", 65) + ":" + b1, nil, true},
		{"empty key", "old1:", nil, true},
		{"bad base64", "old1:!!!notbase64!!!", nil, true},
		{"raw key not accepted", "old1:0123456789abcdefghijklmnopqrstuv", nil, true},
		{"wrong length", "old1:" + base64.StdEncoding.EncodeToString(k1[:31]), nil, true},
		{"duplicate id", "old1:" + b1 + ",old1:" + b2, nil, true},
		{"reversed entry", b2 + ":old1", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOldKeys(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseOldKeys accepted %d keys from invalid input", len(got))
				}
				if !errors.Is(err, ErrInvalidKey) {
					t.Errorf("error %v does not wrap ErrInvalidKey", err)
				}
				for _, b := range []string{b1, b2, strings.TrimRight(b1, "=")} {
					if strings.Contains(err.Error(), b) {
						t.Errorf("error echoes key material: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseOldKeys: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d keys, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if got[i].ID != tt.want[i].ID || !bytes.Equal(got[i].Secret, tt.want[i].Secret) {
					t.Errorf("key %d = {%s %x}, want {%s %x}", i, got[i].ID, got[i].Secret, tt.want[i].ID, tt.want[i].Secret)
				}
			}
		})
	}
}
