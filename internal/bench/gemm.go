package bench

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/sslzoo/sslzoo/tensor"
)

// Gemm times tensor.Sgemm on square size×size×size products, the figure the
// issue compares against raw OpenBLAS (512³ and 2048³). When a C BLAS is in
// use it also reports RawGFLOPS: the same product called straight from C,
// interleaved with ours by tensor.BenchGemm, so the two see the same load.
func Gemm(size, steps, warmup int) (*Result, error) {
	if size <= 0 || steps <= 0 || warmup < 0 {
		return nil, fmt.Errorf("bench gemm: need size > 0, steps > 0, warmup >= 0; got size %d, steps %d, warmup %d", size, steps, warmup)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	n := size * size
	a, b, c := make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range a {
		a[i] = rng.Float32()*2 - 1
		b[i] = rng.Float32()*2 - 1
	}
	call := func() { tensor.Sgemm(false, false, size, size, size, 1, a, size, b, size, 0, c, size) }
	for range warmup {
		call()
	}
	start := time.Now()
	for range steps {
		call()
	}
	secs := time.Since(start).Seconds()
	rss, err := PeakRSSMiB()
	if err != nil {
		return nil, err
	}
	flops := 2 * float64(size) * float64(size) * float64(size)
	r := &Result{
		Engine: "sslzoo", Mode: "gemm", Size: size, Steps: steps, Warmup: warmup,
		Threads: runtime.GOMAXPROCS(0), Seconds: secs, GFLOPS: flops * float64(steps) / secs / 1e9,
		PeakRSSMiB: rss, BLAS: tensor.BLASBackend(),
	}
	// Without a C library there is no raw figure; that is not an error.
	if ours, raw, err := tensor.BenchGemm(size, steps); err == nil && ours > 0 && raw > 0 {
		r.RawGFLOPS = flops / raw.Seconds() / 1e9
		r.PairedGFLOPS = flops / ours.Seconds() / 1e9
	}
	return r, nil
}
