// Package safepath joins names that come from files (ONNX external data
// locations, archive members, manifest and cache names) to the folder they
// belong to, refusing any that would lead out of it: absolute paths, ".."
// steps, and symlinks whose target lies outside.
//
// The check is made on the paths as they are when Join runs; it guards
// against hostile names, not against another process swapping folders for
// symlinks at the same time.
package safepath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ErrEscape matches (errors.Is) every refusal of Join.
var ErrEscape = errors.New("path leaves its folder")

// Join returns root joined with name, a relative path of one or more
// elements, after checking that the result stays inside root: name must be
// local (not empty, not absolute, no ".." that climbs above root), and the
// part of the result that exists must resolve, through any symlinks, to a
// place inside root (root's own symlinks are followed first). A dangling
// symlink is refused too, since creating a file through it would write
// wherever it points.
func Join(root, name string) (string, error) {
	if !filepath.IsLocal(name) {
		return "", fmt.Errorf("%w: %q is not a relative path inside %s", ErrEscape, name, root)
	}
	p := filepath.Join(root, name)
	realRoot, err := filepath.EvalSymlinks(root)
	if missing(err) {
		return p, nil // nothing below a missing root can be a symlink
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", root, err)
	}
	// The deepest existing prefix decides: EvalSymlinks resolves every
	// link on the way to it, and nothing beyond it exists to be a link.
	// root exists, so the walk up ends at the latest there.
	have := p
	for {
		_, err := os.Lstat(have)
		if err == nil {
			break
		}
		if !missing(err) {
			return "", err
		}
		have = filepath.Dir(have)
	}
	real, err := filepath.EvalSymlinks(have)
	if err != nil {
		return "", fmt.Errorf("%w: %s is a symlink that does not resolve (%v); remove it", ErrEscape, have, err)
	}
	if rel, err := filepath.Rel(realRoot, real); err != nil || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%w: %s resolves to %s, outside %s", ErrEscape, have, real, root)
	}
	return p, nil
}

// missing reports a path that is not there, ENOTDIR included (a file where a
// folder on the way should be): the caller's own open or mkdir then says
// what is wrong.
func missing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}
