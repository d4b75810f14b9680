package onnxrt

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// OptLevel is ONNX Runtime's graph optimisation level.
type OptLevel int

// Graph optimisation levels, as ONNX Runtime defines them.
const (
	OptAll      OptLevel = iota // every fusion and layout change (the default)
	OptDisable                  // run the graph exactly as written
	OptBasic                    // constant folding, redundant-node removal
	OptExtended                 // plus the op fusions
)

// ParseOptLevel reads "disable", "basic", "extended" or "all" ("" is all).
func ParseOptLevel(s string) (OptLevel, error) {
	switch strings.ToLower(s) {
	case "", "all":
		return OptAll, nil
	case "disable", "disabled", "none":
		return OptDisable, nil
	case "basic":
		return OptBasic, nil
	case "extended":
		return OptExtended, nil
	}
	return 0, fmt.Errorf("graph optimisation level %q: want disable, basic, extended or all", s)
}

func (l OptLevel) String() string {
	return [...]string{"all", "disable", "basic", "extended"}[l]
}

// Device is where a session runs.
type Device struct {
	CUDA bool
	ID   int // CUDA device ordinal
}

// ParseDevice reads "cpu", "cuda" or "cuda:N" ("" is cpu).
func ParseDevice(s string) (Device, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch {
	case s == "" || s == "cpu":
		return Device{}, nil
	case s == "cuda" || s == "gpu":
		return Device{CUDA: true}, nil
	case strings.HasPrefix(s, "cuda:"):
		n, err := strconv.Atoi(s[len("cuda:"):])
		if err != nil || n < 0 {
			return Device{}, fmt.Errorf("device %q: want cuda:N with N a device number >= 0", s)
		}
		return Device{CUDA: true, ID: n}, nil
	}
	return Device{}, fmt.Errorf("device %q: want cpu, cuda or cuda:N", s)
}

func (d Device) String() string {
	if d.CUDA {
		return fmt.Sprintf("cuda:%d", d.ID)
	}
	return "cpu"
}

// Options configure a Session. The zero value is a CPU session with ONNX
// Runtime's default threading and full graph optimisation.
type Options struct {
	// IntraOpThreads caps the threads one op may use; 0 leaves ONNX
	// Runtime's default (one per physical core).
	IntraOpThreads int
	// Optimization is the graph optimisation level.
	Optimization OptLevel
	// Device selects the execution provider.
	Device Device
	// NoSpin stops ONNX Runtime's threads from busy-waiting between runs,
	// which leaves the cores to work done between runs in the same process
	// (decoding the next images, serving requests).
	NoSpin bool
}

// cudaProviderFiles are the libraries ONNX Runtime's CUDA execution provider
// loads from the folder of libonnxruntime itself. CPU-only packages (the npm
// one included) do not ship them.
var cudaProviderFiles = []string{"libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so"}

// cudaHint says how to get a GPU build of ONNX Runtime.
const cudaHint = "get ONNX Runtime " + ORTVersion + "'s GPU build (the onnxruntime-linux-x64-gpu-" + ORTVersion +
	".tgz release archive, or the onnxruntime/capi folder of the Python wheel onnxruntime-gpu==" + ORTVersion +
	"), then set " + LibraryEnv + " to its libonnxruntime.so.1 (its provider libraries must sit beside it), with CUDA 12 and cuDNN 9 installed"

// nvidiaDriverFile is where a loaded NVIDIA kernel driver reports itself.
const nvidiaDriverFile = "/proc/driver/nvidia/version"

// CUDAStatus says whether --device cuda can work here, without loading
// anything: whether the ONNX Runtime library in use has its CUDA provider
// libraries beside it, and whether an NVIDIA driver is loaded. ok is true
// when both are there (CUDA and cuDNN themselves are checked only when a
// session starts).
func CUDAStatus() (ok bool, detail string) {
	dir := filepath.Dir(LibraryPath())
	for _, f := range cudaProviderFiles {
		if p := filepath.Join(dir, f); !isFile(p) {
			return false, fmt.Sprintf("no CUDA provider (%s is missing); %s", p, cudaHint)
		}
	}
	b, err := os.ReadFile(nvidiaDriverFile)
	if err != nil {
		return false, "the CUDA provider is installed, but no NVIDIA driver is loaded (" + nvidiaDriverFile + " is missing)"
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return true, "CUDA provider in " + dir + "; driver: " + strings.Join(strings.Fields(line), " ")
}
