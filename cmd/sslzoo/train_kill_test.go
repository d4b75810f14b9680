//go:build linux

package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sslzoo/sslzoo/internal/atomicfile"
	"github.com/sslzoo/sslzoo/weights"
	"github.com/sslzoo/sslzoo/zoo/ssl"
)

// TestTrainKillResume kills `sslzoo train byol` (a child process) with
// SIGKILL five times at seeded random points of its checkpoint writes,
// resuming each time from whatever checkpoint is on disk, then lets the
// last resume finish. After every kill the checkpoint is whole and equals,
// byte for byte in every tensor and metadata key, the checkpoint an
// uninterrupted run wrote at the same step (the old one or the new one,
// never a torn one), and nothing but a write's temporary is left beside
// it. The finished run's final weights, last checkpoint and metrics equal
// the uninterrupted run's.
//
// inotify shows when a write's temporary appears; the kill comes after a
// delay drawn from five strata spread over 1.5 times the median write of
// the uninterrupted run, so that most kills land inside the write and some
// after its rename.
func TestTrainKillResume(t *testing.T) {
	t0 := time.Now()
	tinyFashion(t, 24, 8) // 3 steps of 8 an epoch
	// Each kill costs at most two epochs (the first) or one (the rest),
	// so the run is still going at the fifth.
	const epochs, kills = 7, 5
	args := func(out string, extra ...string) []string {
		return append(append([]string{"train", "byol"}, tinyArgs(out, "--epochs", strconv.Itoa(epochs), "--knn-every", "0")...), extra...)
	}

	// The uninterrupted run, keeping a hard link to every checkpoint it
	// renames into place (the next save is an epoch away).
	ref, kept := t.TempDir(), t.TempDir()
	refCkpt := filepath.Join(ref, ssl.CheckpointFile)
	var windows []time.Duration
	events := watchDir(t, ref)
	proc := startCLI(t, args(ref)...)
	var created time.Time
	for running := true; running; {
		select {
		case e := <-events:
			switch {
			case !e.moved && strings.HasPrefix(e.name, atomicfile.TempPrefix(refCkpt)):
				created = e.at
			case e.moved && e.name == ssl.CheckpointFile && !created.IsZero():
				windows = append(windows, e.at.Sub(created))
				if err := os.Link(refCkpt, filepath.Join(kept, strconv.Itoa(len(windows)))); err != nil {
					t.Fatal(err)
				}
			}
		case <-proc.done:
			running = false
		}
	}
	if proc.err != nil {
		t.Fatalf("uninterrupted run: %v: %s", proc.err, proc.stderr.String())
	}
	// Checkpoints by step; the last one is on disk in any case.
	refs := map[int64]string{}
	links, _ := filepath.Glob(filepath.Join(kept, "*"))
	for _, p := range append(links, refCkpt) {
		refs[checkpointStep(t, p)] = p
	}
	if len(refs) < epochs || len(windows) < epochs {
		t.Fatalf("saw %d checkpoint writes (%d steps) of the uninterrupted run, want %d", len(windows), len(refs), epochs)
	}
	slices.Sort(windows)
	window := windows[len(windows)/2]
	t.Logf("uninterrupted run: %d checkpoint writes of %v to %v, median %v (%s each)", len(windows), windows[0], windows[len(windows)-1], window, fileSize(t, refCkpt))

	// Delays: one from each fifth of [0, 1.5 window), in a seeded order.
	rng := rand.New(rand.NewPCG(17, 0))
	delays := make([]time.Duration, kills)
	for i, k := range rng.Perm(kills) {
		delays[i] = time.Duration((float64(k) + rng.Float64()) / kills * 1.5 * float64(window))
	}

	out := t.TempDir()
	ckpt := filepath.Join(out, ssl.CheckpointFile)
	events = watchDir(t, out)
	resume := func() []string {
		if _, err := os.Stat(ckpt); err == nil {
			return []string{"--resume", ckpt}
		}
		return nil // killed before its first checkpoint: start afresh
	}
	var lastStep int64 = -1
	torn := 0
	for i, d := range delays {
		drain(events)
		// A fresh run is cut in its second write, so that an old
		// checkpoint is there to be kept.
		writes := 1
		if lastStep < 0 {
			writes = 2
		}
		proc := startCLI(t, args(out, resume()...)...)
	wait:
		for {
			select {
			case e := <-events:
				if !e.moved && strings.HasPrefix(e.name, atomicfile.TempPrefix(ckpt)) {
					if writes--; writes > 0 {
						continue
					}
					time.Sleep(d)
					proc.cmd.Process.Kill()
					<-proc.done
					break wait
				}
			case <-proc.done:
				t.Fatalf("kill %d: the run ended (%v) before writing a checkpoint: %s", i+1, proc.err, proc.stderr.String())
			}
		}
		// What a kill may leave: the checkpoint, the metrics and the
		// temporary of the write it cut short.
		ents, _ := os.ReadDir(out)
		state, left := "no checkpoint yet", ""
		for _, e := range ents {
			switch n := e.Name(); {
			case n == ssl.CheckpointFile:
				step := checkpointStep(t, ckpt)
				want, ok := refs[step]
				if !ok {
					t.Fatalf("kill %d: checkpoint at step %d, which the uninterrupted run never saved", i+1, step)
				}
				if err := sameCheckpoint(ckpt, want); err != nil {
					t.Fatalf("kill %d: checkpoint at step %d differs from the uninterrupted run's: %v", i+1, step, err)
				}
				if step < lastStep {
					t.Fatalf("kill %d: checkpoint went back from step %d to %d", i+1, lastStep, step)
				}
				state, lastStep = fmt.Sprintf("checkpoint of step %d", step), step
			case n == ssl.MetricsFile:
			case strings.HasPrefix(n, atomicfile.TempPrefix(ckpt)):
				torn++
				left = ", and the temporary " + n + " of the write it cut short"
			default:
				t.Fatalf("kill %d left %s in the output folder", i+1, n)
			}
		}
		t.Logf("kill %d, %v after a checkpoint write began: %s%s", i+1, d.Round(time.Microsecond), state, left)
	}
	if torn == 0 {
		t.Errorf("none of the %d kills landed inside a checkpoint write (median write %v): nothing shown", kills, window)
	}

	proc = startCLI(t, args(out, resume()...)...)
	if <-proc.done; proc.err != nil {
		t.Fatalf("last resume: %v: %s", proc.err, proc.stderr.String())
	}
	ents, _ := os.ReadDir(out)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{ssl.CheckpointFile, ssl.FinalFile, ssl.MetricsFile}; !slices.Equal(names, want) {
		t.Errorf("output folder holds %q, want %q (stale temporaries removed)", names, want)
	}
	worst := maxAbsDiff(t, filepath.Join(ref, ssl.FinalFile), filepath.Join(out, ssl.FinalFile))
	if worst > 1e-6 {
		t.Errorf("final weights differ from the uninterrupted run's by %g", worst)
	}
	if err := sameCheckpoint(ckpt, refCkpt); err != nil {
		t.Errorf("last checkpoint differs from the uninterrupted run's: %v", err)
	}
	// The metrics read as the uninterrupted run's, the times aside.
	strip := func(rs []ssl.MetricsRecord) []ssl.MetricsRecord {
		for i, r := range rs {
			rs[i] = ssl.MetricsRecord{Kind: r.Kind, Step: r.Step, Epoch: r.Epoch, Loss: r.Loss, LR: r.LR}
		}
		return rs
	}
	if a, b := strip(readMetrics(t, ref)), strip(readMetrics(t, out)); !reflect.DeepEqual(a, b) {
		t.Errorf("metrics after the kills:\n%+v\nuninterrupted:\n%+v", b, a)
	}
	t.Logf("%d kills, %d inside a write; final weights within %g of the uninterrupted run's; %v in all", kills, torn, worst, time.Since(t0).Round(time.Millisecond))
}

// child is a running `sslzoo train`: the test binary acting as the CLI.
type child struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan struct{} // closed once it exited; err is then set
	err    error
}

func startCLI(t *testing.T, args ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0], args...), done: make(chan struct{})}
	c.cmd.Env = append(os.Environ(), envRunCLI+"=1")
	c.cmd.Stderr = &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.cmd.Process.Kill(); <-c.done })
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
	return c
}

// dirEvent is a file created in a watched folder, or renamed into it.
type dirEvent struct {
	name  string
	moved bool
	at    time.Time
}

// watchDir reports the files created in or renamed into dir (inotify)
// until the test ends.
func watchDir(t *testing.T, dir string) <-chan dirEvent {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Skipf("inotify: %v", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "inotify") // non-blocking: Close ends a pending Read
	ch := make(chan dirEvent, 4096)
	t.Cleanup(func() { f.Close() })
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := f.Read(buf)
			if err != nil {
				return
			}
			now := time.Now()
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				mask := binary.NativeEndian.Uint32(buf[off+4:])
				l := int(binary.NativeEndian.Uint32(buf[off+12:]))
				name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+l]), "\x00")
				select {
				case ch <- dirEvent{name: name, moved: mask&unix.IN_MOVED_TO != 0, at: now}:
				default: // nobody listens any more
				}
				off += unix.SizeofInotifyEvent + l
			}
		}
	}()
	return ch
}

// drain drops the events of a finished run, waiting until none came for
// 20 ms.
func drain(ch <-chan dirEvent) {
	for {
		select {
		case <-ch:
		case <-time.After(20 * time.Millisecond):
			return
		}
	}
}

// checkpointStep reads a checkpoint in full (weights.Read validates every
// tensor's bytes) and returns its step.
func checkpointStep(t *testing.T, path string) int64 {
	t.Helper()
	f, err := weights.Read(path)
	if err != nil {
		t.Fatalf("checkpoint does not load: %v", err)
	}
	step, err := strconv.ParseInt(f.Metadata["sslzoo.step"], 10, 64)
	if err != nil {
		t.Fatalf("%s: step: %v", path, err)
	}
	return step
}

// sameCheckpoint reports how two safetensors files differ in metadata or
// in any tensor's dtype, shape or bytes.
func sameCheckpoint(a, b string) error {
	fa, err := weights.Read(a)
	if err != nil {
		return err
	}
	fb, err := weights.Read(b)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(fa.Metadata, fb.Metadata) {
		return errors.New("metadata differs")
	}
	if len(fa.Tensors) != len(fb.Tensors) {
		return fmt.Errorf("%d tensors, want %d", len(fa.Tensors), len(fb.Tensors))
	}
	for n, ta := range fa.Tensors {
		tb, ok := fb.Tensors[n]
		if !ok || ta.DType != tb.DType || !slices.Equal(ta.Shape, tb.Shape) || !bytes.Equal(ta.Data, tb.Data) {
			return fmt.Errorf("tensor %s differs", n)
		}
	}
	return nil
}

// readWeightPair reads two weight files, failing the test on either.
func readWeightPair(t *testing.T, a, b string) (*weights.File, *weights.File) {
	t.Helper()
	fa, err := weights.Read(a)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := weights.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	return fa, fb
}

// maxAbsDiff is the largest difference between two weight files over all
// their tensors, which must have the same names and shapes.
func maxAbsDiff(t *testing.T, a, b string) float64 {
	t.Helper()
	fa, fb := readWeightPair(t, a, b)
	if len(fa.Tensors) != len(fb.Tensors) {
		t.Fatalf("%d tensors against %d", len(fa.Tensors), len(fb.Tensors))
	}
	var worst float64
	for n, ta := range fa.Tensors {
		tb, ok := fb.Tensors[n]
		if !ok || !slices.Equal(ta.Shape, tb.Shape) {
			t.Fatalf("tensor %s missing or of another shape", n)
		}
		xa, err := ta.Float32()
		if err != nil { // not a float tensor: it must match exactly
			if ta.DType != tb.DType || !bytes.Equal(ta.Data, tb.Data) {
				worst = math.Inf(1)
			}
			continue
		}
		xb, err := tb.Float32()
		if err != nil {
			t.Fatalf("tensor %s: %v", n, err)
		}
		for i := range xa.Data {
			worst = math.Max(worst, math.Abs(float64(xa.Data[i]-xb.Data[i])))
		}
	}
	return worst
}

func fileSize(t *testing.T, path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%.1f MiB", float64(fi.Size())/(1<<20))
}
