//go:build cgo && linux

package tensor

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestOpenMPSpinCountSetBeforeLoad checks, in a fresh process with no
// OpenMP settings of its own, that loading oneDNN leaves libgomp the short
// spin (ompSpinCount), and that a user's own wait policy is left alone.
func TestOpenMPSpinCountSetBeforeLoad(t *testing.T) {
	if os.Getenv("SZ_OMP_CHILD") != "" {
		if !dnnlState().ok {
			os.Stdout.WriteString("no-onednn\n")
			return
		}
		os.Stdout.WriteString("spin=" + os.Getenv("GOMP_SPINCOUNT") + "\n")
		return
	}
	run := func(extra ...string) string {
		cmd := exec.Command(os.Args[0], "-test.run=^TestOpenMPSpinCountSetBeforeLoad$")
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "GOMP_SPINCOUNT=") && !strings.HasPrefix(kv, "OMP_WAIT_POLICY=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, append([]string{"SZ_OMP_CHILD=1"}, extra...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return string(out)
	}
	got := run()
	if strings.Contains(got, "no-onednn") {
		t.Skip("oneDNN is not installed")
	}
	if !strings.Contains(got, "spin="+ompSpinCount+"\n") {
		t.Errorf("with no OpenMP settings: child saw %q, want GOMP_SPINCOUNT=%s", got, ompSpinCount)
	}
	if got := run("OMP_WAIT_POLICY=passive"); !strings.Contains(got, "spin=\n") {
		t.Errorf("with OMP_WAIT_POLICY=passive: child saw %q, want GOMP_SPINCOUNT left unset", got)
	}
}
