package secrets

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
)

func newTestKeyring(t testing.TB, active Key, old ...Key) *Keyring {
	t.Helper()
	kr, err := NewKeyring(active, old...)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return kr
}

func activeKey(seed byte) Key {
	s := testKey(seed)
	return Key{ID: KeyID(s), Secret: s}
}

const (
	wsA = "6f1c2d3e-0000-4000-8000-00000000000a"
	wsB = "6f1c2d3e-0000-4000-8000-00000000000b"
)

func TestSealOpenRoundTrip(t *testing.T) {
	kr := newTestKeyring(t, activeKey(1))
	for _, pt := range [][]byte{
		[]byte("sk-ant-1234567890"),
		{},
		bytes.Repeat([]byte{0, 0xff, '\n'}, 10000),
	} {
		sealed, err := kr.Seal(pt, wsA, "ANTHROPIC_API_KEY")
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		if len(pt) > 4 && bytes.Contains(sealed, pt) {
			t.Fatal("sealed value contains the plaintext")
		}
		got, err := kr.Open(sealed, wsA, "ANTHROPIC_API_KEY")
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatalf("Open returned %d bytes that differ from the %d sealed", len(got), len(pt))
		}
		if kr.NeedsRotation(sealed) {
			t.Error("a value sealed with the active key should not need rotation")
		}
	}
}

func TestSealFormat(t *testing.T) {
	active := activeKey(1)
	kr := newTestKeyring(t, active)
	pt := []byte("value")
	sealed, err := kr.Seal(pt, wsA, "K")
	if err != nil {
		t.Fatal(err)
	}
	id := active.ID
	if sealed[0] != formatV1 || int(sealed[1]) != len(id) || string(sealed[2:2+len(id)]) != id {
		t.Fatalf("header = %x, want version 1 and id %s", sealed[:2+len(id)], id)
	}
	if want := 2 + len(id) + nonceSize + len(pt) + tagSize; len(sealed) != want {
		t.Errorf("len(sealed) = %d, want %d", len(sealed), want)
	}
	again, err := kr.Seal(pt, wsA, "K")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(sealed, again) {
		t.Error("two seals of the same value are identical: nonce is not random")
	}
	if kr.ActiveID() != id {
		t.Errorf("ActiveID = %q, want %q", kr.ActiveID(), id)
	}
}

func TestOpenRejectsOtherRow(t *testing.T) {
	kr := newTestKeyring(t, activeKey(1), Key{ID: "old", Secret: testKey(2)})
	sealed, err := kr.Seal([]byte("secret"), wsA, "API_KEY")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, owner, key string }{
		{"other owner", wsB, "API_KEY"},
		{"global instead of workspace", "global", "API_KEY"},
		{"other name", wsA, "OTHER_KEY"},
		{"both differ", wsB, "OTHER_KEY"},
		{"length-shifted owner and name", wsA + "A", "PI_KEY"},
		{"empty owner", "", "API_KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := kr.Open(sealed, tt.owner, tt.key)
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("Open = (%q, %v), want ErrTampered", got, err)
			}
		})
	}
}

func TestOpenRejectsTamperedAndTruncated(t *testing.T) {
	kr := newTestKeyring(t, activeKey(1))
	sealed, err := kr.Seal([]byte("a secret value"), wsA, "K")
	if err != nil {
		t.Fatal(err)
	}
	idEnd := 2 + len(kr.ActiveID())

	// Flip every bit position of every byte after the key id: nonce,
	// ciphertext and tag are all covered by authentication.
	for i := idEnd; i < len(sealed); i++ {
		for bit := 0; bit < 8; bit++ {
			bad := bytes.Clone(sealed)
			bad[i] ^= 1 << bit
			if _, err := kr.Open(bad, wsA, "K"); !errors.Is(err, ErrTampered) {
				t.Fatalf("byte %d bit %d flipped: err = %v, want ErrTampered", i, bit, err)
			}
		}
	}

	// The key id is authenticated too: a changed id names no loaded key,
	// and the fallback over every key still fails authentication.
	for i := 2; i < idEnd; i++ {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x01
		if _, err := kr.Open(bad, wsA, "K"); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("id byte %d changed: err = %v, want ErrUnknownKey", i, err)
		}
	}

	cases := map[string][]byte{
		"nil":              nil,
		"one byte":         sealed[:1],
		"header only":      sealed[:idEnd],
		"no tag":           sealed[:len(sealed)-tagSize],
		"one byte short":   sealed[:len(sealed)-1],
		"version 0":        append([]byte{0}, sealed[1:]...),
		"version 2":        append([]byte{2}, sealed[1:]...),
		"id length 0":      append([]byte{formatV1, 0}, sealed[2:]...),
		"id length 200":    append([]byte{formatV1, 200}, sealed[2:]...),
		"id length larger": append([]byte{formatV1, sealed[1] + 1}, sealed[2:]...),
		"extra byte":       append(bytes.Clone(sealed), 0),
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := kr.Open(bad, wsA, "K"); !errors.Is(err, ErrTampered) && !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("err = %v, want ErrTampered or ErrUnknownKey", err)
			}
			if got, err := kr.Open(bad, wsA, "K"); err == nil {
				t.Fatalf("opened malformed input to %q", got)
			}
		})
	}
	// Shapes that cannot be parsed at all are always ErrTampered.
	for _, name := range []string{"nil", "one byte", "header only", "no tag", "version 0", "version 2", "id length 0", "id length 200"} {
		if _, err := kr.Open(cases[name], wsA, "K"); !errors.Is(err, ErrTampered) {
			t.Errorf("%s: err = %v, want ErrTampered", name, err)
		}
	}
}

func TestOpenUnknownKey(t *testing.T) {
	writer := newTestKeyring(t, activeKey(1))
	sealed, err := writer.Seal([]byte("v"), wsA, "K")
	if err != nil {
		t.Fatal(err)
	}
	reader := newTestKeyring(t, activeKey(2), Key{ID: "other", Secret: testKey(3)})
	if _, err := reader.Open(sealed, wsA, "K"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("err = %v, want ErrUnknownKey", err)
	}
	if !reader.NeedsRotation(sealed) {
		t.Error("a value under an unknown key needs rotation")
	}
}

func TestRotation(t *testing.T) {
	oldKey := activeKey(1)
	before := newTestKeyring(t, oldKey)
	sealed, err := before.Seal([]byte("rotate me"), wsA, "TOKEN")
	if err != nil {
		t.Fatal(err)
	}

	// The operator moves the old key to MOLECULE_SECRETS_OLD_KEYS under its
	// derived id, or under any name they like: both must open it.
	for _, oldID := range []string{oldKey.ID, "previous"} {
		t.Run(oldID, func(t *testing.T) {
			after := newTestKeyring(t, activeKey(2), Key{ID: oldID, Secret: oldKey.Secret})
			if !after.NeedsRotation(sealed) {
				t.Fatal("NeedsRotation = false for a value under the old key")
			}
			got, err := after.Open(sealed, wsA, "TOKEN")
			if err != nil {
				t.Fatalf("Open with old key: %v", err)
			}
			if string(got) != "rotate me" {
				t.Fatalf("Open = %q", got)
			}
			// Wrong row still fails under the fallback path.
			if _, err := after.Open(sealed, wsB, "TOKEN"); err == nil {
				t.Fatal("old key opened a value for another owner")
			}
			resealed, err := after.Seal(got, wsA, "TOKEN")
			if err != nil {
				t.Fatal(err)
			}
			if after.NeedsRotation(resealed) {
				t.Error("re-sealed value still needs rotation")
			}
			if _, err := before.Open(resealed, wsA, "TOKEN"); !errors.Is(err, ErrUnknownKey) {
				t.Errorf("old keyring opening new value: err = %v, want ErrUnknownKey", err)
			}
		})
	}
}

func TestOpenFallsBackWhenIDCollides(t *testing.T) {
	// An operator lists the old key under an id that happens to be another
	// key's: the named key fails, and the fallback still finds the right one.
	k1 := activeKey(1)
	sealed, err := newTestKeyring(t, k1).Seal([]byte("v"), wsA, "K")
	if err != nil {
		t.Fatal(err)
	}
	kr := newTestKeyring(t, Key{ID: k1.ID, Secret: testKey(2)}, Key{ID: "renamed", Secret: k1.Secret})
	if got, err := kr.Open(sealed, wsA, "K"); err != nil || string(got) != "v" {
		t.Fatalf("Open = (%q, %v), want v", got, err)
	}
}

func TestNewKeyringValidation(t *testing.T) {
	good := activeKey(1)
	tests := []struct {
		name   string
		active Key
		old    []Key
		ok     bool
	}{
		{"active only", good, nil, true},
		{"with old", good, []Key{{"old", testKey(2)}}, true},
		{"old repeats active exactly", good, []Key{good}, true},
		{"empty id", Key{"", testKey(1)}, nil, false},
		{"id with colon", Key{"a:b", testKey(1)}, nil, false},
		{"id too long", Key{string(bytes.Repeat([]byte("a"), 65)), testKey(1)}, nil, false},
		{"short secret", Key{"a", testKey(1)[:16]}, nil, false},
		{"nil secret", Key{"a", nil}, nil, false},
		{"long secret", Key{"a", append(testKey(1), 0)}, nil, false},
		{"bad old key", good, []Key{{"old", testKey(2)[:31]}}, false},
		{"old reuses active id for other key", good, []Key{{good.ID, testKey(2)}}, false},
		{"two old keys same id", good, []Key{{"x", testKey(2)}, {"x", testKey(3)}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr, err := NewKeyring(tt.active, tt.old...)
			if tt.ok {
				if err != nil {
					t.Fatalf("NewKeyring: %v", err)
				}
				if kr.ActiveID() != tt.active.ID {
					t.Errorf("ActiveID = %q", kr.ActiveID())
				}
				return
			}
			if err == nil {
				t.Fatal("NewKeyring accepted an invalid key")
			}
			if !errors.Is(err, ErrInvalidKey) {
				t.Errorf("error %v does not wrap ErrInvalidKey", err)
			}
		})
	}
}

func TestKeyringCopiesSecrets(t *testing.T) {
	secret := testKey(1)
	kr := newTestKeyring(t, Key{ID: "a", Secret: secret})
	sealed, err := kr.Seal([]byte("v"), wsA, "K")
	if err != nil {
		t.Fatal(err)
	}
	for i := range secret {
		secret[i] = 0
	}
	if _, err := kr.Open(sealed, wsA, "K"); err != nil {
		t.Fatalf("keyring changed when the caller's slice did: %v", err)
	}
}

func TestKeyringConcurrentUse(t *testing.T) {
	kr := newTestKeyring(t, activeKey(1), Key{ID: "old", Secret: testKey(2)})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				name := fmt.Sprintf("K_%d_%d", g, i)
				pt := []byte(name)
				sealed, err := kr.Seal(pt, wsA, name)
				if err != nil {
					errs <- err
					return
				}
				got, err := kr.Open(sealed, wsA, name)
				if err != nil || !bytes.Equal(got, pt) {
					errs <- fmt.Errorf("round trip %s: %q, %v", name, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkSeal(b *testing.B) {
	for _, size := range []int{64, 4096} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			kr := newTestKeyring(b, activeKey(1))
			pt := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := kr.Seal(pt, wsA, "ANTHROPIC_API_KEY"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, size := range []int{64, 4096} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			kr := newTestKeyring(b, activeKey(1))
			sealed, err := kr.Seal(make([]byte, size), wsA, "ANTHROPIC_API_KEY")
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := kr.Open(sealed, wsA, "ANTHROPIC_API_KEY"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpenOldKeyFallback measures the worst case: an id that is not
// loaded, so every key is tried.
func BenchmarkOpenOldKeyFallback(b *testing.B) {
	old := testKey(9)
	sealed, err := newTestKeyring(b, Key{ID: "gone", Secret: old}).Seal(make([]byte, 64), wsA, "K")
	if err != nil {
		b.Fatal(err)
	}
	kr := newTestKeyring(b, activeKey(1), Key{ID: "o1", Secret: testKey(2)}, Key{ID: "o2", Secret: testKey(3)}, Key{ID: "renamed", Secret: old})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kr.Open(sealed, wsA, "K"); err != nil {
			b.Fatal(err)
		}
	}
}
