//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sslzoo/sslzoo/zoo/ssl"
)

// TestTrainMPIRankDies is issue 16's fault check through the CLI: rank 1
// of `mpirun -np 2 sslzoo train simclr` is killed with SIGKILL once
// training has started, and mpirun must exit non-zero within 60 s, saying
// that a rank died (Open MPI 4.1.4: "mpirun noticed that process rank 1
// with PID 0 on node vm exited on signal 9 (Killed)."), instead of rank 0 waiting in its
// allreduce forever. It builds sslzoo with -tags mpi and skips, saying why,
// where Open MPI's compiler, launcher or pkg-config entry is missing.
func TestTrainMPIRankDies(t *testing.T) {
	if testing.Short() {
		t.Skip("builds sslzoo with -tags mpi and runs mpirun")
	}
	bin := buildMPIBinary(t)
	tinyFashion(t, 64, 8)
	out := t.TempDir()
	// Thousands of steps: the run is still going when the kill comes.
	args := []string{"-np", "2", "--oversubscribe", "--timeout", "80", "--mca", "btl", "self,tcp",
		"--mca", "btl_tcp_if_include", "lo", "--mca", "oob_tcp_if_include", "lo",
		bin, "train", "simclr", "--data", "fashion-mnist", "--width", "0.0625", "--size", "16", "--batch", "8",
		"--epochs", "1000", "--knn-every", "0", "--workers", "1", "--log-every", "1", "--out", out}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "mpirun", args...)
	cmd.Env = append(os.Environ(), "OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	var output lockedBuffer
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	started := make(chan struct{})
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			output.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "world size 2 (") {
				once.Do(func() { close(started) })
			}
		}
	}()
	exited := make(chan error, 1)
	go func() { <-copied; exited <- cmd.Wait() }()

	// Training has started once rank 0 logged a step (--log-every 1).
	select {
	case <-started:
	case err := <-exited:
		t.Fatalf("mpirun ended before training started: %v\n%s", err, output.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("no 'world size 2' line after 60 s:\n%s", output.String())
	}
	metrics := filepath.Join(out, ssl.MetricsFile)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if fi, err := os.Stat(metrics); err == nil && fi.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no step record in %s after 30 s:\n%s", metrics, output.String())
		}
	}
	pid, err := rankPID(cmd.Process.Pid, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill rank 1 (pid %d): %v", pid, err)
	}
	killed := time.Now()
	select {
	case err = <-exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("mpirun still running 60 s after rank 1 was killed:\n%s", output.String())
	}
	t.Logf("mpirun ended %.1fs after the kill of rank 1 (pid %d): %v\n%s", time.Since(killed).Seconds(), pid, err, output.String())
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 || ctx.Err() != nil {
		t.Errorf("mpirun: %v (context %v), want a non-zero exit of its own", err, ctx.Err())
	}
	// Open MPI names the rank but not its PID ("with PID 0").
	if o := output.String(); !strings.Contains(o, "process rank 1 with PID") || !strings.Contains(o, "exited on signal 9 (Killed)") {
		t.Errorf("mpirun's output does not say that rank 1 exited on signal 9")
	}
}

// rankPID finds the process of the given rank among mpirun's children
// (mpirun starts the ranks of its own node itself): the one whose
// environment says OMPI_COMM_WORLD_RANK=rank.
func rankPID(mpirun, rank int) (int, error) {
	procs, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return 0, err
	}
	var children []int
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // ended meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		if i < 0 || len(f) < 2 || f[1] != strconv.Itoa(mpirun) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		children = append(children, pid)
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if string(kv) == "OMPI_COMM_WORLD_RANK="+strconv.Itoa(rank) {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("no child of mpirun (pid %d) has OMPI_COMM_WORLD_RANK=%d (children: %v)", mpirun, rank, children)
}

// lockedBuffer is output written by one goroutine and read by another.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) WriteString(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
