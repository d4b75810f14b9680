package tensor

import (
	"errors"
	"math/rand/v2"
	"slices"
	"time"
)

// BenchGemm times an n×n×n product through Sgemm (our Go call path: checks,
// dispatch, cgo) against the same product called straight from C, with the
// two interleaved call by call so that both see the same machine load.
// It returns the median time per call of each. The raw side runs with
// OpenBLAS's own threads set to BLASThreads(), as any other program would
// call it; ours splits the product itself (see sgemmSplit). After each raw
// call it sleeps for spinOut, untimed: OpenBLAS's idle workers spin for
// about 0.1 s after a threaded call, and would otherwise take a core from
// our next call (measured: that alone halved our 512³ figure). Other GEMMs
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
	// One warm-up call each: thread pool start-up and first-touch page
	// faults belong to neither side.
	Sgemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n)
	raw1 := func() time.Duration {
		setLibraryThreads(BLASThreads())
		d := rawSgemm(n, 1, a, b, c)
		setLibraryThreads(1)
		time.Sleep(spinOut)
		return d
	}
	raw1()
	os, rs := make([]time.Duration, reps), make([]time.Duration, reps)
	for r := range reps {
		// Alternate which side goes first, so neither always inherits the
		// other's warm caches.
		if r%2 == 0 {
			os[r] = timeOurs(n, a, b, c)
			rs[r] = raw1()
		} else {
			rs[r] = raw1()
			os[r] = timeOurs(n, a, b, c)
		}
	}
	return median(os), median(rs), nil
}

// spinOut outlasts OpenBLAS's default worker spin (2^28 cycles, about 0.1 s).
const spinOut = 250 * time.Millisecond

func timeOurs(n int, a, b, c []float32) time.Duration {
	t0 := time.Now()
	Sgemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n)
	return time.Since(t0)
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
