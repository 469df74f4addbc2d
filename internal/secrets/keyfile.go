package secrets

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// How long a reader waits for a key file that another process is still
// writing. Only the no-hard-link fallback can expose a partly written file.
const (
	partialReadRetries = 50
	partialReadDelay   = 20 * time.Millisecond
	// generatedFileLen is the size of a file this package writes: padded
	// base64 of KeySize bytes plus a newline. Shorter invalid content may be
	// a write in progress.
	generatedFileLen = (KeySize+2)/3*4 + 1
)

// LoadOrCreateKeyFile reads a key (any form ParseKey accepts) from path, or,
// when path does not exist, creates it: 32 random bytes, base64 with a
// trailing newline, mode 0600, parent directories created 0700.
//
// Creation is atomic and exclusive: the key is written and synced to a temp
// file in the same directory, then hard-linked to path, which fails if path
// already exists (O_EXCL semantics, unlike rename, which would overwrite).
// Two processes starting at once therefore end with one key: the loser reads
// the winner's file. On file systems without hard links it falls back to
// O_CREATE|O_EXCL on path itself, and readers wait briefly for the content.
//
// Errors name the path, never the key.
func LoadOrCreateKeyFile(path string) ([]byte, error) {
	return loadOrCreateKeyFile(path, os.Link)
}

// loadOrCreateKeyFile takes the hard-link function so tests can exercise the
// fallback for file systems without hard links.
func loadOrCreateKeyFile(path string, link func(oldname, newname string) error) ([]byte, error) {
	if key, err := readKeyFile(path); !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("secrets: creating key directory %s: %w", dir, err)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("secrets: generating key: %w", err)
	}
	content := []byte(base64.StdEncoding.EncodeToString(key) + "\n")

	created, err := linkNewFile(dir, path, content, link)
	if err != nil {
		return nil, err
	}
	if !created {
		// Someone else won the race; theirs is the key.
		return readKeyFile(path)
	}
	return key, nil
}

// readKeyFile reads and parses an existing key file. Invalid content shorter
// than a generated file may still be being written by a fallback creator, so
// it is re-read a few times before being reported as invalid.
func readKeyFile(path string) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		b, err := os.ReadFile(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
			return nil, fmt.Errorf("secrets: reading key file %s: %w", path, err)
		}
		key, perr := ParseKey(string(b))
		if perr == nil {
			return key, nil
		}
		if len(b) < generatedFileLen && attempt < partialReadRetries {
			time.Sleep(partialReadDelay)
			continue
		}
		return nil, fmt.Errorf("secrets: key file %s: %w", path, perr)
	}
}

// linkNewFile publishes content at path only if path does not exist yet. It
// reports created=false (and no error) when another process got there first.
func linkNewFile(dir, path string, content []byte, link func(oldname, newname string) error) (created bool, err error) {
	tmp, err := os.CreateTemp(dir, ".key-*.tmp") // CreateTemp uses mode 0600
	if err != nil {
		return false, fmt.Errorf("secrets: creating temp key file in %s: %w", dir, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // the link, if made, keeps the data alive
	if err := writeSyncClose(tmp, content); err != nil {
		return false, fmt.Errorf("secrets: writing temp key file in %s: %w", dir, err)
	}
	switch err := link(tmpName, path); {
	case err == nil:
		syncDir(dir)
		return true, nil
	case errors.Is(err, fs.ErrExist):
		return false, nil
	}
	// No hard links here (some FUSE and network file systems): create path
	// exclusively and write into it.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("secrets: creating key file %s: %w", path, err)
	}
	if err := writeSyncClose(f, content); err != nil {
		// Leave no half key behind for the next start to trip over.
		os.Remove(path)
		return false, fmt.Errorf("secrets: writing key file %s: %w", path, err)
	}
	syncDir(dir)
	return true, nil
}

func writeSyncClose(f *os.File, content []byte) error {
	_, err := f.Write(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes the new directory entry durable. It is best effort: some
// platforms cannot fsync a directory, and the key is already on disk.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
