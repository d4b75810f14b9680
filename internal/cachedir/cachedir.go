// Package cachedir decides where sslzoo keeps what it downloads: pulled
// weights, the ONNX Runtime library, corpora. Every package that needs the
// folder asks here, so the rule lives in one place:
//
//	$SSLZOO_CACHE, else $XDG_CACHE_HOME/sslzoo, else ~/.cache/sslzoo.
package cachedir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Env names the variable that moves the whole cache.
const Env = "SSLZOO_CACHE"

// ErrNoRoot is wrapped by Root's error when none of the variables it reads
// gives a usable folder.
var ErrNoRoot = errors.New("no sslzoo cache directory")

// Root returns the cache folder (not created). A relative $SSLZOO_CACHE or
// $XDG_CACHE_HOME is made absolute, so the cache does not move when the
// process changes directory later (scripts/install-onnxruntime.sh reads the
// same variables in the same order). Without any of the three variables
// Root fails with an error that says what to set.
func Root() (string, error) {
	if d := os.Getenv(Env); d != "" {
		return absolute(d)
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return absolute(filepath.Join(d, "sslzoo"))
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return "", noRootError{}
	}
	return absolute(filepath.Join(home, ".cache", "sslzoo"))
}

func absolute(d string) (string, error) {
	abs, err := filepath.Abs(d)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrNoRoot, d, err)
	}
	return abs, nil
}

// Dir is Root for callers that cannot return an error: when no folder is
// configured it falls back to sslzoo-cache in the temporary directory.
func Dir() string {
	if d, err := Root(); err == nil {
		return d
	}
	return filepath.Join(os.TempDir(), "sslzoo-cache")
}

type noRootError struct{}

func (noRootError) Error() string {
	return "no sslzoo cache directory: none of $" + Env + ", $XDG_CACHE_HOME and $HOME is set; set " + Env + " to a writable folder"
}

func (noRootError) Is(target error) bool { return target == ErrNoRoot }
