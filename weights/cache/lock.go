package cache

import (
	"context"
	"time"
)

// lockPath tries once, without blocking, to take the lock at path. ok is
// false when someone else holds it. unlock releases it and removes the lock
// file. Each platform sets it to flockPath or exclPath.
var lockPath func(path string) (unlock func(), ok bool, err error)

// acquire takes the lock at path, polling until it is free or ctx ends;
// waiting is called once if it has to wait. Polling, rather than a
// blocking flock, keeps the wait cancellable.
func acquire(ctx context.Context, path string, waiting func()) (func(), error) {
	delay := 2 * time.Millisecond
	told := false
	for {
		unlock, ok, err := lockPath(path)
		if err != nil {
			return nil, err
		}
		if ok {
			return unlock, nil
		}
		if !told && waiting != nil {
			waiting()
			told = true
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		if delay < 100*time.Millisecond {
			delay *= 2
		}
	}
}
