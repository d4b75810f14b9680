package tensor

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// BenchGemm times an n×n×n product through Sgemm (our Go call path: checks,
// dispatch, cgo, threading, on whichever backend BLASBackend names)
// against OpenBLAS's cblas_sgemm called straight from C, interleaved round
// by round so that both see the same machine load. It returns the median
// time per call of each. OpenBLAS is the reference even when Sgemm runs on
// oneDNN: it is what other programs on this machine (PyTorch included) get
// for a float32 matmul. BenchGemmVs compares against another library.
func BenchGemm(n, reps int) (ours, raw time.Duration, err error) {
	return BenchGemmVs(n, reps, "openblas")
}

// BenchGemmVs is BenchGemm against lib called straight from C: "openblas"
// or "onednn" (the latter measures our call path's overhead when Sgemm
// runs on oneDNN).
//
// The raw side is the library as any other program calls it, timed hot: a
// block of back-to-back calls in a C loop after one untimed call that
// wakes its workers. OpenBLAS gets its own threads set to BLASThreads() for
// the block; after it we sleep for spinOut, untimed: OpenBLAS's idle
// workers spin for about 0.1 s after a threaded call and would otherwise
// take a core from our next call (measured: that alone halved our 512³
// figure). Other GEMMs running during the benchmark would see OpenBLAS's
// threads switched on. oneDNN runs on BLASThreads() OpenMP threads. The
// library must be loaded: with SSLZOO_BLAS=go there is nothing to compare.
func BenchGemmVs(n, reps int, lib string) (ours, raw time.Duration, err error) {
	s := blasState()
	var rawBlock func(q int, a, b, c []float32) time.Duration
	switch lib {
	case "openblas":
		if !s.cblas {
			return 0, 0, errors.New("tensor.BenchGemm: OpenBLAS is not loaded (" + BLASBackend() + ")")
		}
		rawBlock = func(q int, a, b, c []float32) time.Duration {
			setLibraryThreads(BLASThreads())
			rawSgemm(n, 1, a, b, c)
			d := rawSgemm(n, q, a, b, c) / time.Duration(q)
			setLibraryThreads(1)
			time.Sleep(spinOut)
			return d
		}
	case "onednn":
		if !s.dnnl {
			return 0, 0, errors.New("tensor.BenchGemm: oneDNN sgemm is not loaded (" + s.dnnlLib + ")")
		}
		rawBlock = func(q int, a, b, c []float32) time.Duration {
			th := max(1, BLASThreads())
			rawDNNLSgemm(th, n, 1, a, b, c)
			return rawDNNLSgemm(th, n, q, a, b, c) / time.Duration(q)
		}
	default:
		return 0, 0, fmt.Errorf("tensor.BenchGemm: unknown library %q (want openblas or onednn)", lib)
	}
	if n < 1 || reps < 1 {
		return 0, 0, errors.New("tensor.BenchGemm: n and reps must be positive")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	a, b, c := make([]float32, n*n), make([]float32, n*n), make([]float32, n*n)
	for i := range a {
		a[i] = rng.Float32() - 0.5
		b[i] = rng.Float32() - 0.5
	}
	// Calls per block: about 20 ms of work at 100 GFLOP/s, at least one.
	q := max(1, int(2e9/(2*float64(n)*float64(n)*float64(n))))
	oursBlock := func() time.Duration {
		t0 := time.Now()
		for range q {
			Sgemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n)
		}
		return time.Since(t0) / time.Duration(q)
	}
	// Warm-up: first-touch page faults belong to neither side.
	oursBlock()
	rawBlock(q, a, b, c)
	os, rs := make([]time.Duration, reps), make([]time.Duration, reps)
	for r := range reps {
		// Alternate which side goes first, so neither always inherits the
		// other's warm caches.
		if r%2 == 0 {
			os[r] = oursBlock()
			rs[r] = rawBlock(q, a, b, c)
		} else {
			rs[r] = rawBlock(q, a, b, c)
			os[r] = oursBlock()
		}
	}
	return median(os), median(rs), nil
}

// spinOut outlasts OpenBLAS's default worker spin (2^28 cycles, about 0.1 s).
const spinOut = 250 * time.Millisecond

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
