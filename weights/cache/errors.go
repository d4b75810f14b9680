package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
)

var (
	// ErrChecksum is wrapped by every error about content whose sha256
	// (or size) is not the pinned one.
	ErrChecksum = errors.New("sha256 mismatch")
	// ErrOffline is wrapped when a source was skipped because the cache is
	// offline; errors.Is(err, ErrOffline) on a Pull error means "not cached
	// and not allowed to download".
	ErrOffline = errors.New("offline")
	// ErrTooLarge is wrapped when a source sends more bytes than expected.
	ErrTooLarge = errors.New("larger than expected")
)

// SourceError is one source's failure within a Pull.
type SourceError struct {
	Source Source
	Err    error
}

func (e *SourceError) Error() string { return e.Source.String() + ": " + e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }

// PullError is returned when no source produced the verified file. Its
// message has a summary line and then one line per source, in the order
// they were tried.
type PullError struct {
	Name, File string
	Path       string // where the file would have been cached
	Offline    bool
	Failures   []*SourceError
}

func (e *PullError) Error() string {
	var b strings.Builder
	entry := e.Name + "/" + e.File
	switch {
	case e.Offline && e.allSkipped():
		fmt.Fprintf(&b, "pull %s: not in the cache (%s) and offline mode is on (SSLZOO_OFFLINE): "+
			"run `sslzoo pull %s` where the network is reachable, unset SSLZOO_OFFLINE, or set SSLZOO_MIRROR to a file:// mirror that holds %s",
			entry, e.Path, e.Name, entry)
	case len(e.Failures) == 0:
		fmt.Fprintf(&b, "pull %s: no source to download it from (no mirror, no URL, no bundled copy)", entry)
	default:
		fmt.Fprintf(&b, "pull %s: every source failed (%d tried):", entry, len(e.Failures))
	}
	for i, f := range e.Failures {
		fmt.Fprintf(&b, "\n  %d. %s", i+1, f)
	}
	return b.String()
}

func (e *PullError) allSkipped() bool {
	for _, f := range e.Failures {
		if !errors.Is(f.Err, ErrOffline) {
			return false
		}
	}
	return true
}

// Unwrap lets errors.Is and errors.As see every source's failure.
func (e *PullError) Unwrap() []error {
	errs := make([]error, len(e.Failures))
	for i, f := range e.Failures {
		errs[i] = f
	}
	return errs
}

// DirError is a failure of the cache folder itself (read-only, full,
// missing permissions). It stops a Pull at once: no other source can help.
type DirError struct {
	Dir string
	Err error
}

func (e *DirError) Error() string {
	switch {
	case errors.Is(e.Err, syscall.ENOSPC) || errors.Is(e.Err, syscall.EDQUOT):
		return fmt.Sprintf("cache directory %s is full (%v); free some space or set SSLZOO_CACHE to move the cache", e.Dir, e.Err)
	case errors.Is(e.Err, syscall.EROFS) || errors.Is(e.Err, fs.ErrPermission) || errors.Is(e.Err, syscall.ENOTDIR):
		return fmt.Sprintf("cache directory %s is not writable (%v); set SSLZOO_CACHE to a writable folder", e.Dir, e.Err)
	default:
		return fmt.Sprintf("cache directory %s is not usable (%v); set SSLZOO_CACHE to move the cache", e.Dir, e.Err)
	}
}

func (e *DirError) Unwrap() error { return e.Err }

// transientError marks a failure worth retrying on the same source: a
// dropped connection, a 5xx, a stall, a resume that went wrong.
type transientError struct{ err error }

func (e transientError) Error() string { return e.err.Error() }
func (e transientError) Unwrap() error { return e.err }

func transient(format string, a ...any) error { return transientError{fmt.Errorf(format, a...)} }

func isTransient(err error) bool {
	var t transientError
	return errors.As(err, &t)
}

func isDirError(err error) bool {
	var d *DirError
	return errors.As(err, &d)
}
