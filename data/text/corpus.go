package text

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// OpticksPath is Newton's Opticks as shipped in the Go source tree
// ($GOROOT/src/testdata/Isaac.Newton-Opticks.txt), the smallest real English
// corpus available everywhere Go is.
func OpticksPath() string {
	return filepath.Join(goroot(), "src", "testdata", "Isaac.Newton-Opticks.txt")
}

func goroot() string {
	if r := os.Getenv("GOROOT"); r != "" {
		return r
	}
	if r := runtime.GOROOT(); r != "" { //nolint:staticcheck // the fallback when GOROOT is unset
		return r
	}
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	return ""
}
