package tensor

import (
	"errors"
	"math/rand/v2"
	"slices"
	"time"
)

// BenchGemm times an n×n×n product through Sgemm (our Go call path: checks,
// dispatch, cgo, our split over cores) against the same product called
// straight from C, interleaved round by round so that both see the same
// machine load. It returns the median time per call of each.
//
// The raw side is OpenBLAS as any other program calls it: its own threads
// set to BLASThreads(), and a block of back-to-back calls in a C loop after
// one untimed call that wakes its workers, so it is timed hot. After each raw
// block it sleeps for spinOut, untimed: OpenBLAS's idle workers spin for
// about 0.1 s after a threaded call and would otherwise take a core from our
// next call (measured: that alone halved our 512³ figure). Other GEMMs
// running during the benchmark would see OpenBLAS's threads switched on.
// It needs the C library: with the pure-Go backend there is no raw figure
// to compare with.
func BenchGemm(n, reps int) (ours, raw time.Duration, err error) {
	if !blasState().cblas {
		return 0, 0, errors.New("tensor.BenchGemm: no C BLAS in use (" + BLASBackend() + ")")
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
	rawBlock := func() time.Duration {
		setLibraryThreads(BLASThreads())
		rawSgemm(n, 1, a, b, c)
		d := rawSgemm(n, q, a, b, c) / time.Duration(q)
		setLibraryThreads(1)
		time.Sleep(spinOut)
		return d
	}
	// Warm-up: first-touch page faults belong to neither side.
	oursBlock()
	rawBlock()
	os, rs := make([]time.Duration, reps), make([]time.Duration, reps)
	for r := range reps {
		// Alternate which side goes first, so neither always inherits the
		// other's warm caches.
		if r%2 == 0 {
			os[r] = oursBlock()
			rs[r] = rawBlock()
		} else {
			rs[r] = rawBlock()
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
