// Package fuzzcheck is what the repository's fuzz targets share: the
// allocation bound every reader is held to, and seeds that are built in
// code from the package's test files yet also committed as Go corpus files
// (testdata/fuzz/FuzzXxx/), so that a checkout runs them as plain tests.
package fuzzcheck

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime/metrics"
	"testing"
)

// Slack is what any call may allocate whatever its input: a reader's
// fixed tables, first buffers and error messages.
const Slack = 64 << 20

// Limit is the allocation budget of a call on n input bytes when each
// input byte may stand for perByte bytes of what the reader builds (16
// covers a raw format decoded into wider Go types and copied once).
func Limit(n, perByte int) uint64 { return Slack + uint64(n)*uint64(perByte) }

// Bounded runs fn and fails t when fn allocated more than limit bytes.
// It counts the runtime's cumulative heap allocation, so memory the
// collector took back counts too: a reader that allocates what a header
// declares is caught even when it fails right after. (runtime/metrics
// rather than ReadMemStats: no stop-the-world on every fuzz input.)
func Bounded(t testing.TB, limit uint64, fn func()) {
	t.Helper()
	if got := Allocated(fn); got > limit {
		t.Fatalf("allocated %d bytes (%d MiB), over the bound of %d MiB", got, got>>20, limit>>20)
	}
}

// Allocated is how many heap bytes fn allocated (with whatever other
// goroutines allocated meanwhile, which the fuzzer keeps to little).
func Allocated(fn func()) uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	before := s[0].Value.Uint64()
	fn()
	metrics.Read(s)
	return s[0].Value.Uint64() - before
}

// WriteEnv names the environment variable that makes Seed (re)write the
// committed corpus files: SSLZOO_FUZZ_SEEDS=write go test -run '^Fuzz' ./pkg.
const WriteEnv = "SSLZOO_FUZZ_SEEDS"

// Seed adds one seed, args in the fuzz function's parameter order, under
// testdata/fuzz/<target>/name. With SSLZOO_FUZZ_SEEDS=write the file is
// written; otherwise a committed file with the same content stands in for
// the f.Add, so that no seed runs twice.
func Seed(f *testing.F, name string, args ...any) {
	f.Helper()
	if name == "" || filepath.Base(name) != name {
		f.Fatalf("seed name %q is not a plain file name", name)
	}
	enc, err := Encode(args...)
	if err != nil {
		f.Fatalf("seed %s: %v", name, err)
	}
	path := filepath.Join("testdata", "fuzz", f.Name(), name)
	if os.Getenv(WriteEnv) == "write" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(path, enc, 0o644); err != nil {
			f.Fatal(err)
		}
		return // the file is read back as part of the corpus
	}
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, enc) {
		return
	}
	f.Add(args...)
}

// File reads a seed file of the package's testdata, failing f if it is
// missing (a seed that silently vanished would shrink the corpus).
func File(f *testing.F, path string) []byte {
	f.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatalf("seed: %v", err)
	}
	return b
}

// Encode renders values in Go's corpus file format ("go test fuzz v1"),
// for the types the targets here take.
func Encode(args ...any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case string:
			fmt.Fprintf(&b, "string(%q)\n", v)
		case bool, int, int64, uint, uint16, uint32, uint64:
			fmt.Fprintf(&b, "%T(%v)\n", v, v)
		default:
			return nil, fmt.Errorf("no corpus encoding for %T", a)
		}
	}
	return b.Bytes(), nil
}
