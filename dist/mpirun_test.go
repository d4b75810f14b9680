package dist

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

const workerEnv = "SSLZOO_DIST_WORKER"

// mpirunArgs start ranks on this machine over loopback TCP: no shared-memory
// transport (containers often restrict it) and no other interface (CI
// machines may have none, or one that goes nowhere). --timeout makes mpirun
// kill a job that hangs.
var mpirunArgs = []string{
	"--oversubscribe", "--timeout", "60",
	"--mca", "btl", "self,tcp",
	"--mca", "btl_tcp_if_include", "lo",
	"--mca", "oob_tcp_if_include", "lo",
}

// TestMPIRun runs TestMPIWorker as 2 ranks under mpirun and checks that both
// ranks ran it and passed. Without -tags mpi it first builds a test binary
// with the tag.
func TestMPIRun(t *testing.T) {
	mpirun, bin := mpiTestBinary(t)
	const np = 2
	args := append([]string{"-np", fmt.Sprint(np)}, mpirunArgs...)
	args = append(args, bin, "-test.run", "^TestMPIWorker$", "-test.v", "-test.count=1")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, mpirun, args...)
	// mpirun refuses to run as root unless told twice; CI runs as root.
	cmd.Env = append(os.Environ(), workerEnv+"=1", "OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
	// SIGTERM lets mpirun take its ranks down with it; SIGKILL would orphan them.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("mpirun -np %d (%.1fs):\n%s", np, time.Since(start).Seconds(), out)
	if err != nil {
		t.Fatalf("mpirun: %v", err)
	}
	for r := 0; r < np; r++ {
		if mark := fmt.Sprintf("rank %d of %d: collectives ok", r, np); !strings.Contains(string(out), mark) {
			t.Errorf("no %q in mpirun's output", mark)
		}
	}
}

// mpiTestBinary returns mpirun's path and a test binary of this package
// built with -tags mpi (this one, when it was), skipping where either
// cannot be had.
func mpiTestBinary(t *testing.T) (mpirun, bin string) {
	t.Helper()
	mpirun, err := exec.LookPath("mpirun")
	if err != nil {
		t.Skip("mpirun not on PATH; install Debian openmpi-bin and libopenmpi-dev (scripts/setup.sh does)")
	}
	bin, err = os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if !mpiBuilt {
		if _, err := exec.LookPath("mpicc"); err != nil {
			t.Skip("mpicc not on PATH, so no MPI build; install Debian libopenmpi-dev (scripts/setup.sh does)")
		}
		if err := exec.Command("pkg-config", "--exists", "ompi").Run(); err != nil {
			t.Skipf("pkg-config cannot find ompi (%v), which cgo needs for -tags mpi; install Debian pkgconf (scripts/setup.sh does)", err)
		}
		gobin, err := exec.LookPath("go")
		if err != nil {
			t.Skip("go not on PATH, so no MPI build of this test")
		}
		bin = filepath.Join(t.TempDir(), "dist-mpi.test")
		build := exec.Command(gobin, "test", "-c", "-tags", "mpi", "-o", bin, ".")
		build.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go test -c -tags mpi: %v\n%s", err, out)
		}
	}
	return mpirun, bin
}

// TestMPIWorker is one rank of TestMPIRun; on its own it skips. Every value
// is a small integer or half-integer, so float32 sums are exact in any order
// and the checks compare exactly.
func TestMPIWorker(t *testing.T) {
	if os.Getenv(workerEnv) == "" {
		t.Skip("one rank of TestMPIRun; runs only under it")
	}
	c, err := Init()
	if err != nil {
		t.Fatal(err)
	}
	r, k := c.Rank(), c.Size()
	if k < 2 || !mpiBuilt {
		t.Fatalf("world of %d (%s), want an MPI world of 2 or more", k, c.Backend())
	}
	t.Logf("rank %d of %d over %s", r, k, c.Backend())
	check := func(what string, got, want []float32) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("rank %d: %s = %v, want %v", r, what, got, want)
		}
	}
	// sumRanks is the sum over ranks q of f(q).
	sumRanks := func(f func(q int) float32) float32 {
		var s float32
		for q := 0; q < k; q++ {
			s += f(q)
		}
		return s
	}

	buf := make([]float32, 7)
	want := make([]float32, 7)
	for i := range buf {
		buf[i] = float32(100*r + i)
		want[i] = sumRanks(func(q int) float32 { return float32(100*q + i) })
	}
	if err := c.AllreduceSum(buf); err != nil {
		t.Fatal(err)
	}
	check("AllreduceSum", buf, want)

	for i := range buf {
		buf[i] = float32((r + 1) * (i - 3))
		want[i] = sumRanks(func(q int) float32 { return float32((q + 1) * (i - 3)) }) / float32(k)
	}
	if err := c.AllreduceMean(buf); err != nil {
		t.Fatal(err)
	}
	check("AllreduceMean", buf, want)

	if err := c.AllreduceSum(nil); err != nil {
		t.Errorf("AllreduceSum of nothing: %v", err)
	}

	send := []float32{float32(10 * r), float32(10*r + 1), float32(10*r + 2)}
	all, err := c.Allgather(send)
	if err != nil {
		t.Fatal(err)
	}
	var wantAll []float32
	for q := 0; q < k; q++ {
		wantAll = append(wantAll, float32(10*q), float32(10*q+1), float32(10*q+2))
	}
	check("Allgather", all, wantAll)

	// Uneven lengths fail on every rank alike, and leave the world usable.
	_, err = c.Allgather(make([]float32, 2+r))
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("ranks pass different lengths (from 2 to %d floats; this rank %d)", k+1, 2+r)) {
		t.Errorf("rank %d: Allgather of uneven lengths: %v", r, err)
	}
	err = c.Bcast(make([]float32, 1+r), 0)
	if err == nil || !strings.Contains(err.Error(), "bcast: ranks pass different lengths") {
		t.Errorf("rank %d: Bcast of uneven lengths: %v", r, err)
	}

	root := k - 1
	bc := make([]float32, 4)
	if r == root {
		copy(bc, []float32{5, 6, 7, 8})
	}
	if err := c.Bcast(bc, root); err != nil {
		t.Fatal(err)
	}
	check("Bcast", bc, []float32{5, 6, 7, 8})

	// Buffers longer than one MPI call carries go in chunks.
	maxCount = 5
	big := make([]float32, 13)
	wantBig := make([]float32, 13)
	for i := range big {
		big[i] = float32(r*i + 1)
		wantBig[i] = sumRanks(func(q int) float32 { return float32(q*i + 1) })
	}
	if err := c.AllreduceSum(big); err != nil {
		t.Fatal(err)
	}
	check("chunked AllreduceSum", big, wantBig)
	for i := range big {
		big[i] = float32(r)
	}
	if err := c.Bcast(big, 0); err != nil {
		t.Fatal(err)
	}
	check("chunked Bcast", big, make([]float32, 13))
	maxCount = 1<<31 - 1

	// Gradients through buckets: a packed bucket, a tensor reduced in place,
	// and a packed tail.
	ts := [][]float32{make([]float32, 3), make([]float32, 1), make([]float32, 20), make([]float32, 2), make([]float32, 3)}
	var wantTs [][]float32
	for j, tt := range ts {
		w := make([]float32, len(tt))
		for i := range tt {
			tt[i] = float32((r + 1) * (j + i))
			w[i] = sumRanks(func(q int) float32 { return float32((q + 1) * (j + i)) }) / float32(k)
		}
		wantTs = append(wantTs, w)
	}
	if err := NewReducer(c, 8*4).AllreduceMean(ts); err != nil {
		t.Fatal(err)
	}
	check("Reducer.AllreduceMean", flatten(ts), flatten(wantTs))

	if err := c.Barrier(); err != nil {
		t.Fatal(err)
	}

	// MPI_Init must leave Go's signal handlers in place: a nil dereference
	// stays a recoverable Go panic, not an MPI abort.
	func() {
		defer func() {
			if recover() == nil {
				t.Errorf("rank %d: nil dereference did not panic", r)
			}
		}()
		var p *int
		_ = *p
	}()

	if err := c.Finalize(); err != nil {
		t.Fatal(err)
	}
	if !t.Failed() {
		// TestMPIRun looks for this line from every rank.
		fmt.Printf("rank %d of %d: collectives ok\n", r, k)
	}
}

func flatten(ts [][]float32) []float32 {
	var out []float32
	for _, t := range ts {
		out = append(out, t...)
	}
	return out
}
