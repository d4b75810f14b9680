package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// The exclusive-create lock is for platforms without flock. Its holder
// refreshes the file's mtime every exclHeartbeat; a lock not refreshed for
// exclStale belongs to a process that died and is taken over. Variables so
// that tests can shrink them.
var (
	exclHeartbeat = 10 * time.Second
	exclStale     = time.Minute
)

// exclPath takes the lock by creating path with O_EXCL. Taking over a stale
// lock has a narrow race (two waiters may both judge the same file stale);
// flock has none, which is why flock is used wherever it exists.
func exclPath(path string) (func(), bool, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		st, serr := os.Stat(path)
		if serr == nil && time.Since(st.ModTime()) > exclStale {
			if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				return nil, false, rerr
			}
			f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		}
	}
	if errors.Is(err, fs.ErrExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	host, _ := os.Hostname()
	fmt.Fprintf(f, "pid %d on %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	f.Close()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(exclHeartbeat)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				os.Chtimes(path, now, now)
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		os.Remove(path)
	}, true, nil
}
