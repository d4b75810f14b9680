// Package atomicfile writes files so that readers only ever see the old
// content or the complete new content: the data goes to a temporary file in
// the destination's folder, is synced, and is renamed into place. A failure
// at any point removes the temporary and leaves the destination untouched.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Write creates or replaces path with what fill writes. The file gets mode
// 0644 (CreateTemp's 0600 would make weights and exports private).
func Write(path string, fill func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, TempPrefix(path)+"*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = fill(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		// Best effort, so the rename itself survives a crash; some
		// filesystems refuse to sync a directory.
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// WriteBytes is Write for content already in memory.
func WriteBytes(path string, b []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// TempPrefix is how the names of Write's temporaries for path begin, in
// path's folder. A process killed while writing leaves one behind (the
// destination itself is never touched).
func TempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// RemoveTemps deletes the temporaries of path that killed writes left in
// its folder. Call it only where no other process writes path meanwhile,
// since its temporary would go too.
func RemoveTemps(path string) error {
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("remove stale temporaries of %s: %w", path, err)
	}
	prefix := TempPrefix(path)
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasPrefix(e.Name(), prefix) {
			if err := os.Remove(filepath.Join(filepath.Dir(path), e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove stale temporary: %w", err)
			}
		}
	}
	return nil
}
