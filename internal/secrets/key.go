// Package secrets seals workspace and global secret values with AES-256-GCM.
//
// Every sealed value records the id of the key that made it and binds its
// owner (workspace id or "global") and its key name as associated data, so a
// ciphertext copied to another row, or renamed, fails to open. Several keys
// can be loaded at once: one active key that seals, and old keys that only
// open, which is how an operator rotates SECRETS_ENCRYPTION_KEY.
package secrets

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length of an AES-256 key in bytes.
const KeySize = 32

// maxKeyIDLen bounds a key id; the sealed format stores its length in one byte.
const maxKeyIDLen = 64

// ErrInvalidKey is returned (wrapped, with a reason) by ParseKey,
// ParseOldKeys and NewKeyring when key material or a key id is malformed.
// Messages never contain the key material itself.
var ErrInvalidKey = errors.New("secrets: invalid key")

// Key is one encryption key and the id sealed values carry to name it.
type Key struct {
	ID     string
	Secret []byte // KeySize bytes
}

// ParseKey accepts 32 raw bytes, or standard/URL base64 (padded or not) of
// 32 bytes. The error names what is wrong and never echoes the value.
func ParseKey(s string) ([]byte, error) {
	// Raw form first: base64 of 32 bytes is 43 or 44 characters, so a
	// 32-character value can only be meant as raw bytes.
	if len(s) == KeySize {
		return []byte(s), nil
	}
	// Values from env files and key files often carry a trailing newline.
	t := strings.TrimSpace(s)
	if t == "" {
		return nil, fmt.Errorf("%w: key is empty", ErrInvalidKey)
	}
	if len(t) == KeySize {
		return []byte(t), nil
	}
	return decodeBase64Key(t)
}

// decodeBase64Key decodes standard or URL base64, padded or not, and checks
// that the result is exactly KeySize bytes.
func decodeBase64Key(t string) ([]byte, error) {
	hasStd := strings.ContainsAny(t, "+/")
	hasURL := strings.ContainsAny(t, "-_")
	if hasStd && hasURL {
		return nil, fmt.Errorf("%w: key mixes standard and URL base64 alphabets", ErrInvalidKey)
	}
	enc := base64.RawStdEncoding
	if hasURL {
		enc = base64.RawURLEncoding
	}
	unpadded := strings.TrimRight(t, "=")
	if pad := len(t) - len(unpadded); pad > 2 {
		return nil, fmt.Errorf("%w: key is not valid base64 (too much padding)", ErrInvalidKey)
	}
	// Strict rejects non-zero trailing bits, so one key has one spelling.
	b, err := enc.Strict().DecodeString(unpadded)
	if err != nil {
		// err can quote a byte offset but never the input; still, keep the
		// message our own.
		return nil, fmt.Errorf("%w: key is neither %d raw bytes nor valid base64", ErrInvalidKey, KeySize)
	}
	if len(b) != KeySize {
		return nil, fmt.Errorf("%w: key decodes to %d bytes, want %d", ErrInvalidKey, len(b), KeySize)
	}
	return b, nil
}

// KeyID derives the stable id of an active key: "k" followed by the first 8
// hex characters of SHA-256(key). 32 bits of a hash of a 256-bit key reveal
// nothing useful, and the id stays the same across restarts without being
// stored anywhere.
func KeyID(secret []byte) string {
	sum := sha256.Sum256(secret)
	return "k" + hex.EncodeToString(sum[:4])
}

// validKeyID reports whether id can be stored in the sealed format: 1..64
// characters from [A-Za-z0-9._-]. The narrow alphabet keeps ids readable in
// env vars and logs and free of the separators ParseOldKeys uses.
func validKeyID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: key id is empty", ErrInvalidKey)
	}
	if len(id) > maxKeyIDLen {
		return fmt.Errorf("%w: key id is %d characters, at most %d allowed", ErrInvalidKey, len(id), maxKeyIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			// The id is not quoted: an entry written the wrong way round
			// ("key:id") would otherwise put key material in a log.
			return fmt.Errorf("%w: key id has a character outside [A-Za-z0-9._-]", ErrInvalidKey)
		}
	}
	return nil
}

// ParseOldKeys parses MOLECULE_SECRETS_OLD_KEYS: comma-separated
// "id:base64key" entries. Spaces around entries, ids and keys are trimmed;
// the empty string means no old keys and empty entries (a trailing comma)
// are skipped. Keys must be base64 here (raw bytes could contain a comma).
// Ids must be unique. Errors name the entry by its 1-based position and
// quote neither id nor key, because an entry written the wrong way round
// ("key:id") would put key material where the id belongs.
func ParseOldKeys(s string) ([]Key, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var keys []Key
	seen := make(map[string]bool)
	for i, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		id, b64, ok := strings.Cut(entry, ":")
		if !ok {
			return nil, fmt.Errorf("%w: old key entry %d is not of the form id:base64key", ErrInvalidKey, i+1)
		}
		id, b64 = strings.TrimSpace(id), strings.TrimSpace(b64)
		if err := validKeyID(id); err != nil {
			return nil, fmt.Errorf("old key entry %d: %w", i+1, err)
		}
		if seen[id] {
			return nil, fmt.Errorf("%w: old key entry %d repeats an earlier id", ErrInvalidKey, i+1)
		}
		seen[id] = true
		if b64 == "" {
			return nil, fmt.Errorf("%w: old key entry %d has no key after the colon", ErrInvalidKey, i+1)
		}
		secret, err := decodeBase64Key(b64)
		if err != nil {
			return nil, fmt.Errorf("old key entry %d: %w", i+1, err)
		}
		keys = append(keys, Key{ID: id, Secret: secret})
	}
	return keys, nil
}
