package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/sslzoo/sslzoo/internal/filehash"
)

// Item is one file in the cache, as List reports it.
type Item struct {
	Name, File string
	Size       int64 // bytes on disk (so far, for an incomplete download)
	ModTime    time.Time
	// Incomplete marks an interrupted download (FILE.incomplete) that the
	// next Pull resumes; File is the name it will get.
	Incomplete bool
}

// List returns every file at ROOT/NAME/FILE, sorted by name and file. Lock
// files, sub-folders and names Pull would never write are skipped. A
// missing root is an empty cache.
func (c *Cache) List() ([]Item, error) {
	root, err := c.root()
	if err != nil {
		return nil, err
	}
	names, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list cache %s: %w", root, err)
	}
	var items []Item
	for _, n := range names {
		if !n.IsDir() || checkName("name", n.Name()) != nil {
			continue
		}
		dir := filepath.Join(root, n.Name())
		files, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("list cache %s: %w", dir, err)
		}
		for _, f := range files {
			if !f.Type().IsRegular() {
				continue
			}
			file, incomplete := strings.CutSuffix(f.Name(), incompleteSuffix)
			if checkName("file", file) != nil {
				continue // a lock file, or something we did not write
			}
			info, err := f.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // finished or removed meanwhile
			}
			if err != nil {
				return nil, fmt.Errorf("list cache %s: %w", dir, err)
			}
			items = append(items, Item{Name: n.Name(), File: file, Size: info.Size(), ModTime: info.ModTime(), Incomplete: incomplete})
		}
	}
	sort.Slice(items, func(i, j int) bool {
		a, b := items[i], items[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.File != b.File {
			return a.File < b.File
		}
		return !a.Incomplete && b.Incomplete
	})
	return items, nil
}

// Verify checks that the cached name/file has the given sha256. A missing
// file gives an error wrapping fs.ErrNotExist; a wrong one wraps
// ErrChecksum and names both digests.
func (c *Cache) Verify(name, file, sha string) error {
	p, err := c.Path(name, file)
	if err != nil {
		return fmt.Errorf("verify %s/%s: %w", name, file, err)
	}
	want, err := checkSHA256(sha)
	if err != nil {
		return fmt.Errorf("verify %s/%s: %w", name, file, err)
	}
	got, err := filehash.SHA256(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("verify %s/%s: not in the cache (%s); run `sslzoo pull %s`: %w", name, file, p, name, fs.ErrNotExist)
	}
	if err != nil {
		return fmt.Errorf("verify %s/%s: %w", name, file, err)
	}
	if got != want {
		return fmt.Errorf("verify %s/%s (%s): %w: expected %s, got %s; run `sslzoo pull %s` to fetch it again", name, file, p, ErrChecksum, want, got, name)
	}
	return nil
}

// Remove deletes everything cached for name. It refuses a name that could
// leave the root, and one whose download is running right now (its lock is
// held). A name not in the cache gives an error wrapping fs.ErrNotExist.
func (c *Cache) Remove(name string) error {
	root, err := c.root()
	if err != nil {
		return err
	}
	if err := checkName("name", name); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	dir := filepath.Join(root, name)
	st, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: not in the cache %s: %w", name, root, fs.ErrNotExist)
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("remove %s: %s is not a folder the cache made; remove it by hand", name, dir)
	}
	// Hold every lock while deleting, so no pull is writing underneath.
	locks, _ := filepath.Glob(filepath.Join(dir, "*"+lockSuffix))
	for _, l := range locks {
		unlock, ok, err := lockPath(l)
		if err != nil {
			return fmt.Errorf("remove %s: %w", name, &DirError{Dir: dir, Err: err})
		}
		if !ok {
			return fmt.Errorf("remove %s: a pull of %s is running (lock %s); try again when it ends", name, name, l)
		}
		defer unlock()
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", name, &DirError{Dir: root, Err: err})
	}
	return nil
}
