package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/onnxrt"
)

// TestMain runs the tests, or, with SSLZOO_TEST_RUN_CLI=1, acts as the
// sslzoo command itself (for scripts that tests run).
func TestMain(m *testing.M) {
	if os.Getenv(envRunCLI) == "1" {
		os.Exit(run(os.Args, os.Stdout, os.Stderr))
	}
	code := m.Run()
	if mpiBinary.dir != "" {
		os.RemoveAll(mpiBinary.dir)
	}
	os.Exit(code)
}

// runCLI runs the CLI in-process and returns its exit code and output.
func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(append([]string{"sslzoo"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLIErrorsAreOneLine(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"nope"}, `unknown command "nope"`},
		{[]string{"--bogus"}, "flag provided but not defined"},
		{[]string{"doctor", "--bogus"}, "sslzoo doctor: flag provided but not defined"},
		{[]string{"doctor", "extra"}, `unexpected argument "extra"`},
		{[]string{"bench"}, "name a workload"},
		{[]string{"bench", "foo"}, `unknown workload "foo"`},
		{[]string{"bench", "gemm", "--size", "x"}, "invalid value"},
		{[]string{"bench", "gemm", "--size", "0"}, "must be positive"},
		{[]string{"bench", "gemm", "--steps", "1", "stray"}, `unexpected argument "stray"`},
		{[]string{"bench", "train", "--arch", "resnet7"}, `unknown architecture "resnet7"`},
		{[]string{"bench", "forward", "--arch", "bert-mini"}, "image classifiers"},
		{[]string{"bench", "train", "--batch", "0"}, "must be positive"},
		{[]string{"bench", "train", "--steps", "-1"}, "must be positive"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, out, errs := runCLI(c.args...)
			if code == 0 {
				t.Fatalf("exit 0, want failure; stdout %q", out)
			}
			if strings.Count(errs, "\n") != 1 || !strings.Contains(errs, c.want) {
				t.Fatalf("stderr %q, want one line containing %q", errs, c.want)
			}
			if out != "" {
				t.Fatalf("stdout %q, want nothing (no help dump on errors)", out)
			}
		})
	}
}

func TestDoctor(t *testing.T) {
	code, out, errs := runCLI("doctor")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	wants := []string{"go1.", "GOMAXPROCS", "libopenblas.so.0", "libdnnl.so.2", "\nblas ", "\nconv ", "\nonnxruntime "}
	if onnxrt.Available() == nil {
		wants = append(wants, "\ncuda ") // whether --device cuda can work, said either way
	}
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
}

func TestBenchGemmJSON(t *testing.T) {
	code, out, errs := runCLI("bench", "gemm", "--size", "32", "--steps", "2", "--warmup", "0", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("output %q is not JSON: %v", out, err)
	}
	if r["mode"] != "gemm" || r["size"] != 32.0 || !(r["gflops"].(float64) > 0) || !(r["peak_rss_mib"].(float64) > 0) {
		t.Fatalf("implausible result %v", r)
	}
}

// TestBenchCPUProfileViT: a CPU profile of a ViT forward (whose GEMMs run
// on OpenMP threads, where the profiler's signals corrupted the C heap)
// completes and writes the profile.
func TestBenchCPUProfileViT(t *testing.T) {
	prof := filepath.Join(t.TempDir(), "cpu.pprof")
	for range 3 { // the crash struck about one run in two
		code, _, errs := runCLI("bench", "forward", "--arch", "vit-tiny", "--batch", "2", "--steps", "4", "--warmup", "0", "--cpuprofile", prof)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		if st, err := os.Stat(prof); err != nil || st.Size() == 0 {
			t.Fatalf("profile %s: %v", prof, err)
		}
	}
}

func TestCPUInfo(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cpuinfo")
	text := "processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse2 avx2 fma avx512f\n\nprocessor\t: 1\nflags\t\t: fpu\n"
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	model, flags, err := cpuInfo(p)
	if err != nil {
		t.Fatal(err)
	}
	if model != "Test CPU 9000" || !flags["avx2"] || !flags["avx512f"] || flags["avx512bw"] {
		t.Fatalf("got %q %v", model, flags)
	}
	if got := cpuFeatureLine(flags); got != "avx2 fma avx512f" {
		t.Fatalf("feature line %q", got)
	}
	if got := cpuFeatureLine(map[string]bool{"sse2": true}); got != "no-avx2 no-avx512f" {
		t.Fatalf("feature line without AVX %q", got)
	}
	if _, _, err := cpuInfo(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestFindLibrary(t *testing.T) {
	d := t.TempDir()
	real := filepath.Join(d, "libfoo.so.1.2")
	if err := os.WriteFile(real, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(d, "libfoo.so.1")); err != nil {
		t.Fatal(err)
	}
	got := findLibrary("libfoo.so.1", []string{filepath.Join(d, "none"), d})
	if !strings.HasSuffix(got, "-> "+real) {
		t.Fatalf("findLibrary = %q, want it to resolve to %s", got, real)
	}
	if got := findLibrary("libbar.so.1", []string{d}); got != "" {
		t.Fatalf("found a library that does not exist: %q", got)
	}
}
