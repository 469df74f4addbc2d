package secrets

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
)

// Sealed format, version 1:
//
//	[0]        version (0x01)
//	[1]        n = length of the key id (1..64)
//	[2:2+n]    key id
//	[2+n:14+n] 12-byte random nonce
//	[14+n:]    AES-256-GCM ciphertext followed by its 16-byte tag
//
// The associated data is the header (version, n, id) followed by the
// length-prefixed owner and name, so neither the header nor the row a value
// belongs to can be changed without the tag failing.
const (
	formatV1  byte = 1
	nonceSize      = 12
	tagSize        = 16
)

var (
	// ErrUnknownKey means no key in the keyring opens the value: its key id
	// is not loaded and none of the loaded keys authenticates it. The usual
	// cause is a rotated key missing from MOLECULE_SECRETS_OLD_KEYS.
	ErrUnknownKey = errors.New("secrets: sealed with a key that is not loaded")
	// ErrTampered means the value is malformed (truncated, unknown version)
	// or its key was found but authentication failed: the bytes were
	// modified, or the value was moved to another owner or name.
	ErrTampered = errors.New("secrets: sealed value is corrupt or does not belong here")
)

// keyEntry is a loaded key with its AEAD built once. A GCM AEAD holds only
// the expanded key after construction, so one instance serves concurrent
// Seal/Open calls.
type keyEntry struct {
	id     string
	secret []byte
	aead   cipher.AEAD
}

// Keyring holds the active key, which seals, and old keys, which only open.
// It is immutable after NewKeyring and safe for concurrent use. The zero
// value is not usable; build one with NewKeyring.
type Keyring struct {
	active *keyEntry
	byID   map[string]*keyEntry
	// all lists every distinct key, active first, for the try-every-key
	// fallback in Open.
	all []*keyEntry
}

// NewKeyring builds a keyring from the active key and any old keys. Every key
// must be KeySize bytes with a valid id (1..64 of [A-Za-z0-9._-]). An id
// used twice is an error unless both name the same secret (then the copy is
// dropped), so listing the current key among the old ones is harmless. The
// secrets are copied; later changes to the caller's slices have no effect.
func NewKeyring(active Key, old ...Key) (*Keyring, error) {
	kr := &Keyring{byID: make(map[string]*keyEntry, 1+len(old))}
	add := func(k Key, what string) (*keyEntry, error) {
		if err := validKeyID(k.ID); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if len(k.Secret) != KeySize {
			return nil, fmt.Errorf("%w: %s is %d bytes, want %d", ErrInvalidKey, what, len(k.Secret), KeySize)
		}
		if prev, ok := kr.byID[k.ID]; ok {
			if subtle.ConstantTimeCompare(prev.secret, k.Secret) == 1 {
				return prev, nil
			}
			return nil, fmt.Errorf("%w: %s reuses the id of a different key", ErrInvalidKey, what)
		}
		secret := bytes.Clone(k.Secret)
		block, err := aes.NewCipher(secret)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalidKey, what, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalidKey, what, err)
		}
		e := &keyEntry{id: k.ID, secret: secret, aead: aead}
		kr.byID[k.ID] = e
		kr.all = append(kr.all, e)
		return e, nil
	}
	var err error
	if kr.active, err = add(active, "active key"); err != nil {
		return nil, err
	}
	for i, k := range old {
		if _, err := add(k, fmt.Sprintf("old key %d", i+1)); err != nil {
			return nil, err
		}
	}
	return kr, nil
}

// ActiveID is the id stamped on everything Seal produces.
func (k *Keyring) ActiveID() string { return k.active.id }

// header returns the version byte, id length and id of a v1 sealed value.
func header(id string) []byte {
	h := make([]byte, 0, 2+len(id))
	h = append(h, formatV1, byte(len(id)))
	return append(h, id...)
}

// associatedData binds the header and the row (owner, name). Lengths are
// prefixed so ("ab","c") and ("a","bc") differ.
func associatedData(hdr []byte, owner, name string) []byte {
	ad := make([]byte, 0, len(hdr)+8+len(owner)+len(name))
	ad = append(ad, hdr...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(owner)))
	ad = append(ad, owner...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(name)))
	ad = append(ad, name...)
	return ad
}

// Seal encrypts plaintext under the active key with owner (workspace id or
// "global") and name (the secret's key name) bound as associated data. Each
// call draws a fresh random nonce; with 96-bit random nonces one key is good
// for far more values than a platform stores (the usual bound is 2^32).
func (k *Keyring) Seal(plaintext []byte, owner, name string) ([]byte, error) {
	hdr := header(k.active.id)
	out := make([]byte, len(hdr)+nonceSize, len(hdr)+nonceSize+len(plaintext)+tagSize)
	copy(out, hdr)
	nonce := out[len(hdr):]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("secrets: reading random nonce: %w", err)
	}
	return k.active.aead.Seal(out, nonce, plaintext, associatedData(hdr, owner, name)), nil
}

// parsed is the split form of a sealed value.
type parsed struct {
	hdr, nonce, ct []byte
	id             string
}

func parse(sealed []byte) (parsed, error) {
	if len(sealed) < 2 {
		return parsed{}, fmt.Errorf("%w: too short", ErrTampered)
	}
	if sealed[0] != formatV1 {
		return parsed{}, fmt.Errorf("%w: unknown format version %d", ErrTampered, sealed[0])
	}
	n := int(sealed[1])
	if n == 0 || n > maxKeyIDLen {
		return parsed{}, fmt.Errorf("%w: bad key id length", ErrTampered)
	}
	if len(sealed) < 2+n+nonceSize+tagSize {
		return parsed{}, fmt.Errorf("%w: too short", ErrTampered)
	}
	return parsed{
		hdr:   sealed[:2+n],
		id:    string(sealed[2 : 2+n]),
		nonce: sealed[2+n : 2+n+nonceSize],
		ct:    sealed[2+n+nonceSize:],
	}, nil
}

// Open decrypts a value made by Seal for the same owner and name. It tries
// the key named by the stored id first, then every other loaded key: GCM
// authentication makes a wrong key fail rather than yield garbage, so an
// operator who lists an old key under a different id still opens old rows.
//
// Errors: ErrTampered when the value is malformed, or its stored id is loaded
// but no key authenticates it (bytes modified, or moved to another owner or
// name); ErrUnknownKey when the stored id is not loaded and no key opens it.
// A modified id byte therefore also reads as ErrUnknownKey: the two cases
// cannot be told apart.
func (k *Keyring) Open(sealed []byte, owner, name string) ([]byte, error) {
	p, err := parse(sealed)
	if err != nil {
		return nil, err
	}
	ad := associatedData(p.hdr, owner, name)
	named, known := k.byID[p.id]
	if known {
		if pt, err := named.aead.Open(nil, p.nonce, p.ct, ad); err == nil {
			return pt, nil
		}
	}
	// Fall back to every other key: an operator may have listed an old key
	// under another id, even one that collides with a different key's id.
	for _, e := range k.all {
		if e == named {
			continue
		}
		if pt, err := e.aead.Open(nil, p.nonce, p.ct, ad); err == nil {
			return pt, nil
		}
	}
	if known {
		return nil, ErrTampered
	}
	return nil, ErrUnknownKey
}

// NeedsRotation reports whether sealed was not made with the active key, so a
// rotation job should Open and re-Seal it. A malformed value also reports
// true: the job's Open then surfaces ErrTampered instead of the row being
// silently skipped.
func (k *Keyring) NeedsRotation(sealed []byte) bool {
	p, err := parse(sealed)
	if err != nil {
		return true
	}
	return p.id != k.active.id
}
