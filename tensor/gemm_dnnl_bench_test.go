//go:build linux

package tensor

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// gemmShape is one product as our models issue it: m×n×k with the
// transposes the caller uses, repeated batch times (batch > 1: as the
// independent products of batched attention, spread over goroutines the
// way autograd's batchedGemm does).
type gemmShape struct {
	name         string
	m, n, k      int
	tA, tB       bool
	batch        int
	withGonumRef bool // also time gonum (only where it is cheap)
}

var backendBenchShapes = []gemmShape{
	{name: "square512", m: 512, n: 512, k: 512},
	{name: "square2048", m: 2048, n: 2048, k: 2048},
	{name: "square128", m: 128, n: 128, k: 128},
	// ResNet-18 im2col per image (O × C·9 × H·W): layer1 and layer3.
	{name: "conv-l1", m: 64, n: 1024, k: 576},
	{name: "conv-l3", m: 256, n: 64, k: 2304},
	// ViT-tiny on 64 images of 65 tokens: qkv forward (x @ W^T), its
	// weight gradient (G^T @ X) and mlp fc2.
	{name: "vit-qkv", m: 4160, n: 576, k: 192, tB: true},
	{name: "vit-qkv-dW", m: 576, n: 192, k: 4160, tA: true},
	{name: "vit-fc2", m: 4160, n: 192, k: 768, tB: true},
	// BERT-mini: 16 sequences of 256 tokens, 256 -> 1024.
	{name: "bert-fc1", m: 4096, n: 1024, k: 256, tB: true},
	// Attention: ViT-tiny q @ k^T per head (64 images × 3 heads) and a
	// small model's (8 tokens, head dim 32).
	{name: "attn-65", m: 65, n: 65, k: 64, tB: true, batch: 192},
	{name: "attn-8", m: 8, n: 8, k: 32, tB: true, batch: 256, withGonumRef: true},
	{name: "small-64", m: 64, n: 64, k: 64, withGonumRef: true},
	{name: "small-32", m: 32, n: 32, k: 32, withGonumRef: true},
	{name: "tiny-16", m: 16, n: 16, k: 16, withGonumRef: true},
	{name: "tiny-8", m: 8, n: 8, k: 8, withGonumRef: true},
	{name: "tiny-4", m: 4, n: 4, k: 4, withGonumRef: true},
	{name: "vec-64", m: 1, n: 64, k: 64, withGonumRef: true},
}

// BenchmarkGemmBackends compares the GEMM backends on the shapes our
// models produce: OpenBLAS as loaded (single-threaded, split over cores
// by us), oneDNN split by us into single-threaded calls, and oneDNN on its
// own OpenMP threads. Modes alternate block by block, so that all see the
// same machine load, and the figure is the best block of reps (the machine
// is shared). After each block a few products are each followed by a Go
// element-wise pass over 1M floats on both cores ("ew", as in a training
// step): it shows what threads left spinning by a library cost the Go code
// that follows. It prints a table to stderr; this is the measurement
// behind gemmDefault and dnnlOwnThreads. SSLZOO_GEMM_SHAPES and
// SSLZOO_GEMM_MODES (comma-separated names) limit the shapes and modes,
// SSLZOO_GEMM_REPS sets the blocks per mode (default 7).
func BenchmarkGemmBackends(b *testing.B) {
	s := blasState()
	if !s.cblas || !s.dnnl {
		b.Skipf("needs both OpenBLAS and oneDNN loaded: %s", BLASBackend())
	}
	oldUse, oldOwn, oldThreads := s.use, dnnlOwnThreads, BLASThreads()
	defer func() { s.use, dnnlOwnThreads = oldUse, oldOwn; SetBLASThreads(oldThreads) }()
	type mode struct {
		name    string
		use     gemmBackend
		own     bool
		threads int
	}
	modes := []mode{
		{"openblas", backendOpenBLAS, false, 2},
		{"onednn-split", backendOneDNN, false, 2},
		{"onednn-omp", backendOneDNN, true, 2},
		{"openblas-1t", backendOpenBLAS, false, 1},
		{"onednn-1t", backendOneDNN, true, 1},
	}
	if v := os.Getenv("SSLZOO_GEMM_MODES"); v != "" {
		modes = slices.DeleteFunc(modes, func(m mode) bool { return !slices.Contains(strings.Split(v, ","), m.name) })
	}
	reps := 7
	if v, err := strconv.Atoi(os.Getenv("SSLZOO_GEMM_REPS")); err == nil && v > 0 {
		reps = v
	}
	only := map[string]bool{}
	if v := os.Getenv("SSLZOO_GEMM_SHAPES"); v != "" {
		for _, n := range strings.Split(v, ",") {
			only[n] = true
		}
	}
	ew := make([]float32, 1<<20)
	ewPass := func() {
		Parallel(len(ew), 4, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				ew[i] = ew[i]*0.5 + 1
			}
		})
	}
	fmt.Fprintf(os.Stderr, "%-12s %-22s", "shape", "m×n×k tA tB ×batch")
	for _, md := range modes {
		fmt.Fprintf(os.Stderr, " %21s", md.name)
	}
	fmt.Fprintf(os.Stderr, " %8s  (GFLOP/s best block / GFLOP per CPU-s; ew µs after a GEMM)\n", "gonum")
	for _, sh := range backendBenchShapes {
		if len(only) > 0 && !only[sh.name] {
			continue
		}
		b.Run(sh.name, func(b *testing.B) {
			batch := max(1, sh.batch)
			ar, ac := sh.m, sh.k
			if sh.tA {
				ar, ac = sh.k, sh.m
			}
			br, bc := sh.k, sh.n
			if sh.tB {
				br, bc = sh.n, sh.k
			}
			rng := rand.New(rand.NewPCG(1, 1))
			x, y := randSlice(rng, batch*ar*ac), randSlice(rng, batch*br*bc)
			z := make([]float32, batch*sh.m*sh.n)
			flops := 2 * float64(sh.m*sh.n*sh.k) * float64(batch)
			run := func(gemm func(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)) {
				if batch == 1 {
					gemm(sh.tA, sh.tB, sh.m, sh.n, sh.k, 1, x, ac, y, bc, 0, z, sh.n)
					return
				}
				sa, sb, sc := ar*ac, br*bc, sh.m*sh.n
				Parallel(batch, sh.m*sh.n*sh.k, func(lo, hi int) {
					for i := lo; i < hi; i++ {
						gemm(sh.tA, sh.tB, sh.m, sh.n, sh.k, 1, x[i*sa:(i+1)*sa], ac, y[i*sb:(i+1)*sb], bc, 0, z[i*sc:(i+1)*sc], sh.n)
					}
				})
			}
			// Blocks of about 10 ms at 100 GFLOP/s, 7 per mode; then a few
			// products each followed by the element-wise pass.
			q := max(1, min(20000, int(1e9/flops)))
			const ewCalls = 3
			best := make([]time.Duration, len(modes))
			ewSum := make([][]time.Duration, len(modes))
			cpu, calls := make([]time.Duration, len(modes)), make([]int, len(modes))
			for i := range best {
				best[i] = time.Hour
			}
			for range b.N {
				for r := -1; r < reps; r++ { // r = -1 warms every mode up
					for j := range modes {
						mi := (j + max(r, 0)) % len(modes)
						md := modes[mi]
						s.use, dnnlOwnThreads = md.use, md.own
						SetBLASThreads(md.threads)
						t0, c0 := time.Now(), cpuTime()
						for range q {
							run(Sgemm)
						}
						tg := time.Since(t0)
						if r >= 0 {
							cpu[mi] += cpuTime() - c0
							calls[mi] += q
						}
						var te time.Duration
						for range ewCalls {
							run(Sgemm)
							t1 := time.Now()
							ewPass()
							te += time.Since(t1)
						}
						if r >= 0 {
							best[mi] = min(best[mi], tg/time.Duration(q))
							ewSum[mi] = append(ewSum[mi], te/ewCalls)
						}
					}
				}
			}
			gonumGF := 0.0
			if sh.withGonumRef {
				t0 := time.Now()
				for range q {
					run(sgemmGonum)
				}
				gonumGF = flops / (time.Since(t0) / time.Duration(q)).Seconds() / 1e9
			}
			fmt.Fprintf(os.Stderr, "%-12s %-22s", sh.name, fmt.Sprintf("%dx%dx%d %s%s x%d", sh.m, sh.n, sh.k, tf(sh.tA), tf(sh.tB), batch))
			for mi, md := range modes {
				gf := flops / best[mi].Seconds() / 1e9
				b.ReportMetric(gf, "GFLOP/s-"+md.name)
				// GFLOP per CPU-second over all threads of the process:
				// spinning or duplicated work shows here even when the
				// machine's load blurs the wall-clock figure.
				eff := flops * float64(calls[mi]) / cpu[mi].Seconds() / 1e9
				b.ReportMetric(eff, "GFLOP/cpu-s-"+md.name)
				fmt.Fprintf(os.Stderr, " %6.1f/%5.1f (%4dµs)", gf, eff, median(ewSum[mi]).Microseconds())
			}
			fmt.Fprintf(os.Stderr, " %8.1f\n", gonumGF)
		})
	}
}

func tf(t bool) string {
	if t {
		return "T"
	}
	return "N"
}

// cpuTime is the CPU time used so far by every thread of the process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
