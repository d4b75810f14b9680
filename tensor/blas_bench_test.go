package tensor

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// BenchmarkSgemm times square products through Sgemm on whatever backend
// this process chose (see BLASBackend); GFLOP/s is reported per size.
func BenchmarkSgemm(b *testing.B) {
	for _, n := range []int{64, 256, 512, 1024} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			x, y, z := randSlice(rng, n*n), randSlice(rng, n*n), make([]float32, n*n)
			b.ResetTimer()
			for range b.N {
				Sgemm(false, false, n, n, n, 1, x, n, y, n, 0, z, n)
			}
			b.ReportMetric(2*float64(n*n*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkSgemmGonum is the pure-Go fallback on the same sizes.
func BenchmarkSgemmGonum(b *testing.B) {
	for _, n := range []int{64, 256, 512} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			x, y, z := randSlice(rng, n*n), randSlice(rng, n*n), make([]float32, n*n)
			b.ResetTimer()
			for range b.N {
				sgemmGonum(false, false, n, n, n, 1, x, n, y, n, 0, z, n)
			}
			b.ReportMetric(2*float64(n*n*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkGemmVsRaw prints our call path against the libraries called
// straight from C, interleaved: raw OpenBLAS (the target: our speed
// >= 0.9 of it) and, when loaded, raw oneDNN (the overhead of our path when
// Sgemm runs on oneDNN). Edit the list to add sizes.
func BenchmarkGemmVsRaw(b *testing.B) {
	if !cblasLoaded() {
		b.Skipf("no C BLAS: %s", BLASBackend())
	}
	libs := []string{"openblas"}
	if blasState().dnnl {
		libs = append(libs, "onednn")
	}
	for _, n := range []int{512, 2048} {
		for _, lib := range libs {
			b.Run(fmt.Sprintf("%d/vs-%s", n, lib), func(b *testing.B) {
				reps := 5
				if n <= 512 {
					reps = 11
				}
				for range b.N {
					ours, raw, err := BenchGemmVs(n, reps, lib)
					if err != nil {
						b.Fatal(err)
					}
					speed := raw.Seconds() / ours.Seconds()
					flops := 2 * float64(n) * float64(n) * float64(n)
					b.ReportMetric(speed, "ours/raw-speed")
					b.ReportMetric(flops/ours.Seconds()/1e9, "GFLOP/s")
					b.ReportMetric(flops/raw.Seconds()/1e9, "raw-GFLOP/s")
					fmt.Fprintf(os.Stderr, "gemm %d^3: ours %v (%.1f GFLOP/s) raw %s %v (%.1f GFLOP/s) speed ratio %.3f (%s)\n",
						n, ours, flops/ours.Seconds()/1e9, lib, raw, flops/raw.Seconds()/1e9, speed, BLASBackend())
				}
			})
		}
	}
}

// BenchmarkSgemmThreads compares three ways to run one product over the
// shapes our models produce (m×n×k): square sizes, ViT-tiny and BERT-mini
// Linear layers on a batch of 64 (rows = tokens), and one head's attention
// product. "one": a single core; "split": ours, blocks over 2 cores with
// OpenBLAS single-threaded (what Sgemm does on OpenBLAS); "lib": OpenBLAS's own 2 threads.
// Each GEMM is followed by a Go element-wise pass over 1M floats on
// tensor.Parallel (the "ew" figures), as in a training step, to show what
// OpenBLAS's spinning workers cost the Go code after them. The three modes
// alternate call by call so that all see the same machine load; figures
// are medians. After a "lib" call it sleeps (untimed) until OpenBLAS's
// workers stop spinning, or they would take a core from the next mode's
// call. It is how the threading design in gemm.go was chosen.
func BenchmarkSgemmThreads(b *testing.B) {
	if !cblasLoaded() || BLASThreads() == 0 {
		b.Skipf("no thread control: %s", BLASBackend())
	}
	// The modes are OpenBLAS's, whichever backend Sgemm would pick.
	s := blasState()
	old, oldUse := BLASThreads(), s.use
	s.use = backendOpenBLAS
	defer func() { SetBLASThreads(old); s.use = oldUse }()
	defer setLibraryThreads(1)
	shapes := [][3]int{
		{64, 64, 64}, {128, 128, 128}, {256, 256, 256}, {512, 512, 512}, {1024, 1024, 1024},
		{4160, 576, 192}, // ViT-tiny qkv: 64 images × 65 tokens, 192 -> 576
		{4160, 192, 768}, // ViT-tiny mlp fc2
		{65, 65, 64},     // one head's q @ k^T
		{8192, 256, 256}, // BERT-mini: 64 × 128 tokens, 256 -> 256
	}
	modes := []struct {
		name      string
		ours, lib int
	}{{"one", 1, 1}, {"split", 2, 1}, {"lib", 1, 2}}
	ew := make([]float32, 1<<20)
	for _, s := range shapes {
		m, n, k := s[0], s[1], s[2]
		b.Run(fmt.Sprintf("%dx%dx%d", m, n, k), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			x, y, z := randSlice(rng, m*k), randSlice(rng, k*n), make([]float32, m*n)
			// About 30 ms of work per mode at 20 GFLOP/s, 5 to 15 calls.
			reps := max(5, min(15, int(6e8/(2*float64(m*n*k)))))
			gemmT := make([][]time.Duration, len(modes))
			ewT := make([][]time.Duration, len(modes))
			for range b.N {
				for r := range reps {
					for j := range modes {
						mi := (j + r) % len(modes)
						SetBLASThreads(modes[mi].ours)
						setLibraryThreads(modes[mi].lib)
						t0 := time.Now()
						Sgemm(false, false, m, n, k, 1, x, k, y, n, 0, z, n)
						t1 := time.Now()
						Parallel(len(ew), 4, func(lo, hi int) {
							for i := lo; i < hi; i++ {
								ew[i] = ew[i]*0.5 + 1
							}
						})
						gemmT[mi] = append(gemmT[mi], t1.Sub(t0))
						ewT[mi] = append(ewT[mi], time.Since(t1))
						if modes[mi].lib > 1 {
							setLibraryThreads(1)
							time.Sleep(spinOut)
						}
					}
				}
			}
			for mi, md := range modes {
				d := median(gemmT[mi])
				b.ReportMetric(2*float64(m*n*k)/d.Seconds()/1e9, "GFLOP/s-"+md.name)
				b.ReportMetric(float64(median(ewT[mi]).Microseconds()), "ew-us-"+md.name)
			}
		})
	}
}
