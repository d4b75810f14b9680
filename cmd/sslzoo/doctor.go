package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/sslzoo/sslzoo/onnxrt"
)

func doctorCommand() *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "report the Go runtime, CPU features, compute kernels and libraries in use",
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return doctor(c.App.Writer)
		},
	}
}

// libSpec is a shared library sslzoo can use when present.
type libSpec struct {
	soname, role, pkg string
}

var doctorLibs = []libSpec{
	{"libopenblas.so.0", "GEMM", "libopenblas-dev"},
	{"libdnnl.so.2", "convolution", "libdnnl-dev"},
}

// doctorData lists data and tools used by the demo, benchmarks and tests.
var doctorData = []struct{ path, what, pkg string }{
	{"/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", "Fashion-MNIST (make demo)", "dataset-fashion-mnist"},
	{"/usr/share/libonnx-testdata/data/node", "ONNX node tests (conformance)", "libonnx-testdata"},
	{"/usr/lib/python3/dist-packages/torch", "PyTorch for /usr/bin/python3 (make bench, golden files)", "python3-torch"},
	{"/usr/lib/python3/dist-packages/torchvision", "torchvision for /usr/bin/python3", "python3-torchvision"},
	{"/usr/lib/python3/dist-packages/onnx", "python onnx checker", "python3-onnx"},
}

func doctor(w io.Writer) error {
	row := func(k, v string) { fmt.Fprintf(w, "%-20s %s\n", k, v) }
	row("go", runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH)
	row("GOMAXPROCS", fmt.Sprintf("%d (NumCPU %d)", runtime.GOMAXPROCS(0), runtime.NumCPU()))

	model, flags, err := cpuInfo("/proc/cpuinfo")
	if err != nil {
		row("cpu", "unknown ("+err.Error()+")")
	} else {
		row("cpu", model)
		row("cpu features", cpuFeatureLine(flags))
	}
	for _, k := range []string{"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "SSLZOO_BLAS", "SSLZOO_DNNL"} {
		if v, ok := os.LookupEnv(k); ok {
			row(k, v)
		}
	}
	for _, k := range kernelReport() {
		row(k[0], k[1])
		// OpenBLAS 0.3.21 does not know recent CPUs and falls back to its
		// SSE3 kernel; say so, since it explains slow GEMM figures. sslzoo
		// never sets OPENBLAS_CORETYPE itself.
		if k[0] == "blas" && strings.Contains(k[1], "Prescott") && flags["avx2"] {
			row("", "note: OpenBLAS picked its generic Prescott (SSE3) kernel on this AVX2/AVX-512 CPU")
		}
	}

	dirs := libraryDirs()
	for _, l := range doctorLibs {
		if p := findLibrary(l.soname, dirs); p != "" {
			row(l.soname, p+" ("+l.role+")")
		} else {
			row(l.soname, "not found ("+l.role+"; "+l.pkg+")")
		}
	}
	if err := onnxrt.Available(); err != nil {
		row("onnxruntime", "unavailable: "+oneLine(err))
	} else {
		row("onnxruntime", onnxrt.Version()+" ("+onnxrt.LibraryPath()+")")
		if ok, detail := onnxrt.CUDAStatus(); ok {
			row("cuda", "available: "+detail)
		} else {
			row("cuda", "unavailable (--device cuda will fail; cpu works): "+detail)
		}
	}
	for _, d := range doctorData {
		if _, err := os.Stat(d.path); err == nil {
			row("data", d.what+": "+d.path)
		} else {
			row("data", d.what+": missing ("+d.pkg+")")
		}
	}
	return nil
}

// cpuInfo returns the first processor's model name and flag set.
func cpuInfo(path string) (string, map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	model := "unknown model"
	flags := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "model name":
			model = strings.TrimSpace(v)
		case "flags":
			for _, fl := range strings.Fields(v) {
				flags[fl] = true
			}
			return model, flags, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", nil, fmt.Errorf("read %s: %w", path, err)
	}
	return model, flags, fmt.Errorf("no flags line in %s", path)
}

func cpuFeatureLine(flags map[string]bool) string {
	var parts []string
	for _, f := range []string{"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile"} {
		if flags[f] {
			parts = append(parts, f)
		} else if f == "avx2" || f == "avx512f" {
			parts = append(parts, "no-"+f)
		}
	}
	return strings.Join(parts, " ")
}

// libraryDirs lists where the dynamic loader looks: LD_LIBRARY_PATH, the
// directories named in /etc/ld.so.conf.d, and the Debian defaults.
func libraryDirs() []string {
	var dirs []string
	if p := os.Getenv("LD_LIBRARY_PATH"); p != "" {
		dirs = append(dirs, filepath.SplitList(p)...)
	}
	confs, _ := filepath.Glob("/etc/ld.so.conf.d/*.conf")
	for _, c := range confs {
		b, err := os.ReadFile(c)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, "/") {
				dirs = append(dirs, line)
			}
		}
	}
	dirs = append(dirs, "/usr/local/lib", "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
		"/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib", "/usr/lib")
	return dirs
}

// findLibrary returns the resolved path of soname in dirs, or "". Resolving
// the symlink shows which Debian alternative (e.g. openblas-pthread) is active.
func findLibrary(soname string, dirs []string) string {
	for _, d := range dirs {
		p := filepath.Join(d, soname)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if r, err := filepath.EvalSymlinks(p); err == nil && r != p {
			return p + " -> " + r
		}
		return p
	}
	return ""
}
