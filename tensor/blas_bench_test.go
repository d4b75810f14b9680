package tensor

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
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

// BenchmarkGemmVsRaw prints our call path against cblas_sgemm called
// straight from C, interleaved (the target: ours/raw time ratio
// <= 1/0.9, i.e. our speed >= 0.9 of raw). Sizes: SSLZOO_GEMM_SIZES is not
// read; edit the list to add sizes.
func BenchmarkGemmVsRaw(b *testing.B) {
	if !cblasLoaded() {
		b.Skipf("no C BLAS: %s", BLASBackend())
	}
	for _, n := range []int{512, 2048} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			reps := 5
			if n <= 512 {
				reps = 21
			}
			for range b.N {
				ours, raw, err := BenchGemm(n, reps)
				if err != nil {
					b.Fatal(err)
				}
				speed := raw.Seconds() / ours.Seconds()
				b.ReportMetric(speed, "ours/raw-speed")
				b.ReportMetric(2*float64(n)*float64(n)*float64(n)/ours.Seconds()/1e9, "GFLOP/s")
				fmt.Fprintf(os.Stderr, "gemm %d^3: ours %v raw %v speed ratio %.3f (%s)\n", n, ours, raw, speed, BLASBackend())
			}
		})
	}
}
