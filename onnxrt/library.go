package onnxrt

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sslzoo/sslzoo/internal/cachedir"
)

// ORTVersion is the ONNX Runtime release that scripts/install-onnxruntime.sh
// installs and that the tests run against.
const ORTVersion = "1.30.0"

// LibraryEnv names the environment variable that overrides library discovery.
const LibraryEnv = "ONNXRUNTIME_SHARED_LIBRARY_PATH"

// InstallHint is the command that puts ONNX Runtime where discovery looks.
const InstallHint = "scripts/install-onnxruntime.sh"

// CacheDir is sslzoo's cache folder: $SSLZOO_CACHE, else
// $XDG_CACHE_HOME/sslzoo, else ~/.cache/sslzoo.
func CacheDir() string {
	return cachedir.Dir()
}

// CachedLibraryPath is where the install script puts the library.
func CachedLibraryPath() string {
	return filepath.Join(CacheDir(), "onnxruntime", ORTVersion, "libonnxruntime.so.1")
}

// systemDirs are the folders searched last, after LD_LIBRARY_PATH.
var systemDirs = []string{
	"/usr/local/lib", "/usr/local/lib64", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib",
}

// libraryNames are the file names ONNX Runtime ships under on Linux.
var libraryNames = []string{"libonnxruntime.so.1", "libonnxruntime.so"}

// ErrNoLibrary is wrapped by FindLibrary's error when no candidate exists.
var ErrNoLibrary = errors.New("ONNX Runtime library not found")

// FindLibrary returns the path of the ONNX Runtime shared library to load.
// An explicit $ONNXRUNTIME_SHARED_LIBRARY_PATH must exist (there is no
// silent fallback from a wrong override); otherwise the cache and then the
// system folders are tried. The error lists every path tried and how to
// install the library.
func FindLibrary() (string, error) {
	if p := os.Getenv(LibraryEnv); p != "" {
		if !isFile(p) {
			return "", fmt.Errorf("%w: %s=%s is not a file; fix the variable or unset it and run %s", ErrNoLibrary, LibraryEnv, p, InstallHint)
		}
		return p, nil
	}
	if p := CachedLibraryPath(); isFile(p) {
		return p, nil
	}
	var dirs []string
	for _, d := range strings.Split(os.Getenv("LD_LIBRARY_PATH"), ":") {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	dirs = append(dirs, systemDirs...)
	for _, d := range dirs {
		for _, n := range libraryNames {
			if p := filepath.Join(d, n); isFile(p) {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%w: tried $%s (unset), %s, and %s in %s; install it with %s or set %s",
		ErrNoLibrary, LibraryEnv, CachedLibraryPath(), strings.Join(libraryNames, "/"), strings.Join(dirs, ":"), InstallHint, LibraryEnv)
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}
