//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly || illumos

package cache

import (
	"errors"
	"os"
	"syscall"
)

func init() { lockPath = flockPath }

// flockPath locks with flock(2). The kernel drops the lock when the holder
// dies, so a crashed pull never leaves a stale lock behind; and separate
// opens conflict even inside one process, so goroutines are covered too.
func flockPath(path string) (func(), bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false, err
	}
	fd := int(f.Fd())
	for {
		err = syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, &os.PathError{Op: "flock", Path: path, Err: err}
	}
	// The previous holder removes the file as it unlocks; if that happened
	// between our open and our flock we hold a lock on an orphan, which
	// protects nothing. Report "busy" so the caller opens the path again.
	held, err1 := f.Stat()
	now, err2 := os.Stat(path)
	if err1 != nil || err2 != nil || !os.SameFile(held, now) {
		syscall.Flock(fd, syscall.LOCK_UN)
		f.Close()
		return nil, false, nil
	}
	return func() {
		// Remove first, so that anyone who opens the path from now on gets
		// a fresh file rather than the one being released.
		os.Remove(path)
		syscall.Flock(fd, syscall.LOCK_UN)
		f.Close()
	}, true, nil
}
