package bench

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"

	"github.com/sslzoo/sslzoo/tensor"
)

const minGemmWarmup = 300 * time.Millisecond

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
	// Warm up for at least warmup calls and minGemmWarmup: the first calls
	// pay for JIT code generation, thread start-up and page faults, and at
	// small sizes that spans many calls.
	for t0, i := time.Now(), 0; i < warmup || time.Since(t0) < minGemmWarmup; i++ {
		call()
	}
	// GFLOP/s comes from the median call, which a shared machine's
	// hiccups move less than the mean.
	times := make([]float64, steps)
	start := time.Now()
	for i := range times {
		t0 := time.Now()
		call()
		times[i] = time.Since(t0).Seconds()
	}
	secs := time.Since(start).Seconds()
	slices.Sort(times)
	med := times[len(times)/2]
	rss, err := PeakRSSMiB()
	if err != nil {
		return nil, err
	}
	flops := 2 * float64(size) * float64(size) * float64(size)
	r := &Result{
		Engine: "sslzoo", Mode: "gemm", Size: size, Steps: steps, Warmup: warmup,
		Threads: runtime.GOMAXPROCS(0), Seconds: secs, GFLOPS: flops / med / 1e9,
		PeakRSSMiB: rss, BLAS: tensor.BLASBackend(),
	}
	// Without a C library there is no raw figure; that is not an error.
	if ours, raw, err := tensor.BenchGemm(size, steps); err == nil && ours > 0 && raw > 0 {
		r.RawGFLOPS = flops / raw.Seconds() / 1e9
		r.PairedGFLOPS = flops / ours.Seconds() / 1e9
	}
	return r, nil
}
