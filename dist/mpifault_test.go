package dist

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

const faultEnv = "SSLZOO_DIST_FAULT"

// TestMPIFaults runs TestMPIFaultWorker as 2 ranks under mpirun, once for
// each way a job must end instead of hanging: a rank that calls Abort, and
// a rank that never enters the collective the other waits in (a 2 s
// timeout). mpirun must exit non-zero, well before its own --timeout, with
// the rank's line in its output. (Open MPI adds "MPI_ABORT was invoked on
// rank R in communicator MPI_COMM_WORLD with errorcode 1" most times, but
// not always: a job that ends at once can lose it to "ORTE_ERROR_LOG: Out
// of resource in file ../../../orte/util/show_help.c".)
func TestMPIFaults(t *testing.T) {
	mpirun, bin := mpiTestBinary(t)
	for _, tc := range []struct{ fault, line string }{
		{"abort", "dist: rank 1 of 2: aborting the job: rank 1 gave up"},
		{"timeout", "dist: rank 0 of 2: barrier has waited 2s: another rank died or hangs; aborting the job"},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			args := append([]string{"-np", "2"}, mpirunArgs...)
			args = append(args, bin, "-test.run", "^TestMPIFaultWorker$", "-test.v", "-test.count=1")
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, mpirun, args...)
			cmd.Env = append(os.Environ(), faultEnv+"="+tc.fault, EnvTimeout+"=2s",
				"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
			cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
			cmd.WaitDelay = 10 * time.Second
			start := time.Now()
			out, err := cmd.CombinedOutput()
			took := time.Since(start)
			t.Logf("mpirun -np 2, %s (%.1fs):\n%s", tc.fault, took.Seconds(), out)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || ctx.Err() != nil {
				t.Fatalf("mpirun: %v (context: %v), want a non-zero exit of its own", err, ctx.Err())
			}
			if !strings.Contains(string(out), tc.line) {
				t.Errorf("no %q in mpirun's output", tc.line)
			}
			t.Logf("exit status %d", exit.ExitCode())
			if strings.Contains(string(out), "worker did not end") {
				t.Error("a rank outlived the abort")
			}
		})
	}
}

// TestMPIFaultWorker is one rank of TestMPIFaults; on its own it skips.
func TestMPIFaultWorker(t *testing.T) {
	fault := os.Getenv(faultEnv)
	if fault == "" {
		t.Skip("one rank of TestMPIFaults; runs only under it")
	}
	c, err := Init()
	if err != nil {
		t.Fatal(err)
	}
	if c.Size() != 2 || c.Timeout() != 2*time.Second {
		t.Fatalf("world of %d with timeout %v, want 2 ranks and the 2s of %s", c.Size(), c.Timeout(), EnvTimeout)
	}
	if err := c.Barrier(); err != nil {
		t.Fatal(err)
	}
	switch {
	case c.Rank() == 0:
		err = c.Barrier() // until rank 1 aborts, or the timeout
	case fault == "abort":
		c.Abort(errors.New("rank 1 gave up"))
	default:
		time.Sleep(40 * time.Second) // never enters the Barrier
	}
	t.Errorf("rank %d: worker did not end (%v)", c.Rank(), err)
}
