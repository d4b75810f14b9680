// Package bench measures sslzoo's training and inference throughput and its
// peak memory, in a form that scripts/bench.sh can set beside PyTorch's
// figures from scripts/bench_torch.py (same JSON field names).
package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Result is one benchmark run. The JSON names match bench_torch.py's output.
type Result struct {
	Engine       string  `json:"engine"` // "sslzoo" or "pytorch"
	Mode         string  `json:"mode"`   // "train", "forward" or "gemm"
	Arch         string  `json:"arch,omitempty"`
	Batch        int     `json:"batch,omitempty"`
	Size         int     `json:"size,omitempty"` // GEMM m=n=k
	Steps        int     `json:"steps"`
	Warmup       int     `json:"warmup"`
	Threads      int     `json:"threads"`
	Seconds      float64 `json:"seconds"` // timed steps only
	ImagesPerSec float64 `json:"images_per_sec,omitempty"`
	GFLOPS       float64 `json:"gflops,omitempty"` // from the median call
	// RawGFLOPS is the C library called directly, and PairedGFLOPS ours in
	// the same interleaved run (medians); their ratio is the cost of our
	// Go call path.
	RawGFLOPS    float64 `json:"raw_gflops,omitempty"`
	PairedGFLOPS float64 `json:"paired_gflops,omitempty"`
	PeakRSSMiB   float64 `json:"peak_rss_mib"`
	FirstLoss    float64 `json:"first_loss,omitempty"`
	LastLoss     float64 `json:"last_loss,omitempty"`
	BLAS         string  `json:"blas,omitempty"`
	Conv         string  `json:"conv,omitempty"`
}

// PeakRSSMiB returns the process's peak resident set size (VmHWM) in MiB.
func PeakRSSMiB() (float64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("peak RSS: %w", err)
	}
	return parseVmHWM(b)
}

func parseVmHWM(status []byte) (float64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("peak RSS: unexpected VmHWM line %q", sc.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("peak RSS: VmHWM line %q: %w", sc.Text(), err)
		}
		return float64(kb) / 1024, nil
	}
	return 0, fmt.Errorf("peak RSS: no VmHWM line in /proc/self/status")
}

// Summary is a one-line human reading of r.
func (r *Result) Summary() string {
	switch r.Mode {
	case "gemm":
		s := fmt.Sprintf("%s gemm %d^3: %.1f GFLOP/s over %d calls (%.3fs), peak RSS %.0f MiB",
			r.Engine, r.Size, r.GFLOPS, r.Steps, r.Seconds, r.PeakRSSMiB)
		if r.RawGFLOPS > 0 {
			s += fmt.Sprintf("; interleaved with raw OpenBLAS: ours %.1f vs raw %.1f GFLOP/s (%.2fx)",
				r.PairedGFLOPS, r.RawGFLOPS, r.PairedGFLOPS/r.RawGFLOPS)
		}
		return s
	default:
		return fmt.Sprintf("%s %s %s batch %d: %.1f images/s over %d steps (%.3fs/step), peak RSS %.0f MiB",
			r.Engine, r.Mode, r.Arch, r.Batch, r.ImagesPerSec, r.Steps, r.Seconds/float64(r.Steps), r.PeakRSSMiB)
	}
}
