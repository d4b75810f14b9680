package dist

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// A rank that aborts wakes the ranks blocked in a collective, and every
// later collective of every rank fails, saying which rank aborted and why.
func TestInProcessAbort(t *testing.T) {
	const k = 3
	comms, err := NewInProcess(k)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("step 2: boom")
	errs := make([]error, k)
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Go(func() {
			if err := c.Barrier(); err != nil {
				errs[r] = err
				return
			}
			if r == 2 {
				c.Abort(boom)
				errs[r] = c.Barrier()
				return
			}
			errs[r] = c.AllreduceSum(make([]float32, 4))
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("ranks still blocked 30 s after rank 2 aborted")
	}
	for r, want := range []string{
		"dist: rank 0 of 3: rank 2 aborted: step 2: boom",
		"dist: rank 1 of 3: rank 2 aborted: step 2: boom",
		"dist: rank 2 of 3: step 2: boom",
	} {
		if errs[r] == nil || errs[r].Error() != want || !errors.Is(errs[r], boom) {
			t.Errorf("rank %d: %v, want %q wrapping the cause", r, errs[r], want)
		}
	}
	// The world stays over, for every collective.
	if _, err := comms[0].Allgather([]float32{1}); err == nil || !strings.Contains(err.Error(), "rank 2 aborted") {
		t.Errorf("Allgather after the abort: %v", err)
	}
	if err := comms[1].Bcast([]float32{1}, 0); err == nil || !strings.Contains(err.Error(), "rank 2 aborted") {
		t.Errorf("Bcast after the abort: %v", err)
	}
	// A second abort changes nothing.
	comms[0].Abort(errors.New("later"))
	if err := comms[1].Barrier(); err == nil || !strings.Contains(err.Error(), "rank 2 aborted: step 2: boom") {
		t.Errorf("Barrier after a second abort: %v", err)
	}

	// One process has no one to abort.
	c := newLocal("test")
	c.Abort(boom)
	if err := c.Barrier(); err != nil {
		t.Errorf("one-process Barrier after Abort: %v", err)
	}
}

// A collective that one rank never enters times out on the rank waiting in
// it, with one line on stderr, and fails the other rank's next collective.
func TestInProcessTimeout(t *testing.T) {
	var out bytes.Buffer
	var outMu sync.Mutex
	prev := stderr
	stderr = writerFunc(func(p []byte) (int, error) { outMu.Lock(); defer outMu.Unlock(); return out.Write(p) })
	defer func() { stderr = prev }()

	comms, err := NewInProcess(2)
	if err != nil {
		t.Fatal(err)
	}
	if d := comms[0].Timeout(); d != DefaultTimeout {
		t.Errorf("in-process timeout %v, want DefaultTimeout", d)
	}
	for _, c := range comms {
		c.SetTimeout(200 * time.Millisecond)
	}
	// Quick collectives do not trip it.
	var wg sync.WaitGroup
	for _, c := range comms {
		wg.Go(func() {
			for range 20 {
				if err := c.AllreduceSum([]float32{1}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()

	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- comms[0].Barrier() }() // rank 1 never comes
	select {
	case err = <-errc:
	case <-time.After(30 * time.Second):
		t.Fatal("Barrier still waiting 30 s into a 200 ms timeout")
	}
	const line = "dist: rank 0 of 2: barrier has waited 200ms: another rank died or hangs; aborting the job"
	if err == nil || err.Error() != line {
		t.Errorf("timed-out Barrier: %v, want %q", err, line)
	}
	t.Logf("the Barrier returned after %v", time.Since(start).Round(time.Millisecond))
	outMu.Lock()
	if got := out.String(); got != line+"\n" {
		t.Errorf("stderr %q, want the one line %q", got, line)
	}
	outMu.Unlock()
	err = comms[1].AllreduceSum([]float32{1})
	if want := "dist: rank 1 of 2: rank 0 aborted: barrier has waited 200ms"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("rank 1's next collective: %v, want %q...", err, want)
	}

	// No timeout: a collective waits as long as it takes.
	comms, _ = NewInProcess(2)
	comms[0].SetTimeout(0)
	comms[1].SetTimeout(-time.Second)
	if comms[0].Timeout() != 0 || comms[1].Timeout() != 0 {
		t.Errorf("timeouts %v and %v, want 0 (off)", comms[0].Timeout(), comms[1].Timeout())
	}
	go func() { time.Sleep(300 * time.Millisecond); errc <- comms[1].Barrier() }()
	if err := comms[0].Barrier(); err != nil {
		t.Errorf("Barrier without a timeout: %v", err)
	}
	if err := <-errc; err != nil {
		t.Errorf("the late rank's Barrier: %v", err)
	}
}

func TestTimeoutFromEnv(t *testing.T) {
	for _, tc := range []struct {
		v    string
		d    time.Duration
		fail bool
	}{
		{v: "", d: DefaultTimeout},
		{v: "30s", d: 30 * time.Second},
		{v: "1h30m", d: 90 * time.Minute},
		{v: "0", d: 0},
		{v: "10", fail: true},
		{v: "soon", fail: true},
		{v: "-1s", fail: true},
	} {
		d, err := timeoutFromEnv(func(k string) string {
			if k == EnvTimeout {
				return tc.v
			}
			return ""
		})
		if tc.fail {
			if err == nil || !strings.Contains(err.Error(), EnvTimeout+"=") {
				t.Errorf("%s=%q: %v, %v; want an error naming it", EnvTimeout, tc.v, d, err)
			}
			continue
		}
		if err != nil || d != tc.d {
			t.Errorf("%s=%q: %v, %v; want %v", EnvTimeout, tc.v, d, err, tc.d)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
