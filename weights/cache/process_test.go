package cache

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const helperEnv = "SSLZOO_CACHE_TEST_HELPER"

// TestHelperPull is not a test: TestPullAcrossProcesses runs the test
// binary again with it, one pull per process.
func TestHelperPull(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process for TestPullAcrossProcesses")
	}
	c := &Cache{Root: os.Getenv("HELPER_ROOT"), Progress: os.Stderr}
	p, err := c.Pull(context.Background(), request(os.Getenv("HELPER_URL")))
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	fmt.Println(p)
	os.Exit(0)
}

func TestPullAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	const procs = 3
	var waiting atomic.Int32
	release := make(chan struct{})
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		<-release
		serve(payload)(w, r, n)
	})
	root := t.TempDir()
	type result struct {
		out string
		err error
	}
	results := make(chan result, procs)
	for i := 0; i < procs; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPull$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"=1", "HELPER_ROOT="+root, "HELPER_URL="+s.URL+"/f")
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			var errText strings.Builder
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				if strings.Contains(sc.Text(), "waiting for it") {
					waiting.Add(1)
				}
				errText.WriteString(sc.Text() + "\n")
			}
			err := cmd.Wait()
			if err != nil {
				err = fmt.Errorf("%v: %s", err, errText.String())
			}
			results <- result{strings.TrimSpace(out.String()), err}
		}()
	}
	// Hold the one download until the other processes are seen waiting.
	deadline := time.Now().Add(20 * time.Second)
	for waiting.Load() < procs-1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	want := filepath.Join(root, "tiny-net", "model.safetensors")
	for i := 0; i < procs; i++ {
		r := <-results
		if r.err != nil {
			t.Errorf("helper: %v", r.err)
		} else if !strings.HasSuffix(r.out, want) {
			t.Errorf("helper printed %q, want %q", r.out, want)
		}
	}
	if n := waiting.Load(); n != procs-1 {
		t.Errorf("%d processes waited for the lock, want %d", n, procs-1)
	}
	if n := s.count(); n != 1 {
		t.Fatalf("server saw %d downloads, want 1", n)
	}
	assertCached(t, &Cache{Root: root}, want)
}
