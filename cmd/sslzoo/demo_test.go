package main

import (
	"bytes"
	"compress/gzip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/onnxrt"
)

// The demo walks the user path offline with an empty HOME and cache: the
// bundled encoder is pulled from the binary, the images are embedded and
// classified, and the exported file agrees across the two engines.
func TestDemoOffline(t *testing.T) {
	tinyFashion(t, 300, 100)
	// ONNX Runtime itself lives in the real cache; keep pointing at it.
	if lib, err := onnxrt.FindLibrary(); err == nil {
		t.Setenv("ONNXRUNTIME_SHARED_LIBRARY_PATH", lib)
	} else {
		t.Skipf("the demo compares ONNX Runtime with the Go engine: %v", err)
	}
	t.Setenv("HOME", t.TempDir())
	t.Setenv("SSLZOO_CACHE", t.TempDir())
	t.Setenv("SSLZOO_OFFLINE", "1")
	code, stdout, stderr := runCLI("demo")
	if code != 0 {
		t.Fatalf("demo: exit %d: %s", code, stderr)
	}
	m := regexp.MustCompile(`kNN top-1: ([0-9.]+)%`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no accuracy line in:\n%s", stdout)
	}
	// tinyFashion's two classes differ in brightness; any encoder worth
	// bundling separates them.
	if acc, _ := strconv.ParseFloat(m[1], 64); acc < 90 {
		t.Errorf("kNN top-1 %.2f%% on two easy classes", acc)
	}
	d := regexp.MustCompile(`max \|diff\| ([0-9.e+-]+)`).FindStringSubmatch(stdout)
	if d == nil {
		t.Fatalf("no parity line in:\n%s", stdout)
	}
	if diff, _ := strconv.ParseFloat(d[1], 64); !(diff < 1e-3) {
		t.Errorf("ONNX Runtime and the Go engine differ by %g", diff)
	}
	if !strings.Contains(stdout, "1. pulled "+demoModel) {
		t.Errorf("no pull line in:\n%s", stdout)
	}
}

// writeIDXGz writes a gzipped IDX file (ubyte) of the given dims.
func writeIDXGz(t *testing.T, path string, dims []int, data []byte) {
	t.Helper()
	var raw bytes.Buffer
	raw.Write([]byte{0, 0, 8, byte(len(dims))})
	for _, d := range dims {
		raw.Write([]byte{byte(d >> 24), byte(d >> 16), byte(d >> 8), byte(d)})
	}
	raw.Write(data)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw.Bytes())
	zw.Close()
	if err := os.WriteFile(path, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
