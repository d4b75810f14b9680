package tensor

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// TestDNNLGemmLeavesOpenMPThreads checks that a oneDNN GEMM run on a chosen
// thread count restores the OS thread's OpenMP setting: the convolution
// primitives executed later on the same thread must still get every core.
func TestDNNLGemmLeavesOpenMPThreads(t *testing.T) {
	if !blasState().dnnl {
		t.Skipf("oneDNN sgemm not loaded: %s", blasState().dnnlLib)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := ompMaxThreads()
	if before < 1 {
		t.Fatalf("omp_get_max_threads() = %d", before)
	}
	a := []float32{1, 2, 3, 4, 5, 6}
	c := make([]float32, 4)
	for _, threads := range []int{1, before + 1, 0} {
		sgemmDNNL(threads, false, true, 2, 2, 3, 1, a, 3, a, 3, 0, c, 2)
		// [1 2 3; 4 5 6] @ its transpose = [14 32; 32 77], by hand.
		if c[0] != 14 || c[1] != 32 || c[2] != 32 || c[3] != 77 {
			t.Fatalf("threads=%d: got %v, want [14 32 32 77]", threads, c)
		}
		if got := ompMaxThreads(); got != before {
			t.Fatalf("after a GEMM on %d threads, omp_get_max_threads() = %d, was %d", threads, got, before)
		}
	}
}

// TestDNNLGemmSameBitsAnyThreads checks that a product's bits do not depend
// on how many cores were free when it ran: Sgemm gives oneDNN one or more
// threads depending on what else is running, and training must still be
// reproducible (checkpoint resume is compared bit for bit). Shapes include
// long-k weight gradients, where a library might split the sum over k.
func TestDNNLGemmSameBitsAnyThreads(t *testing.T) {
	if !blasState().dnnl {
		t.Skipf("oneDNN sgemm not loaded: %s", blasState().dnnlLib)
	}
	shapes := []struct {
		m, n, k int
		tA, tB  bool
	}{{96, 64, 4160, true, false}, {16, 16, 20000, true, false}, {300, 130, 70, false, true}, {65, 65, 64, false, true}, {4, 400, 3000, false, false}}
	rng := rand.New(rand.NewPCG(9, 9))
	for _, s := range shapes {
		lda, ldb := s.k, s.n
		if s.tA {
			lda = s.m
		}
		if s.tB {
			ldb = s.k
		}
		a, b := randSlice(rng, s.m*s.k), randSlice(rng, s.k*s.n)
		one := make([]float32, s.m*s.n)
		sgemmDNNL(1, s.tA, s.tB, s.m, s.n, s.k, 1, a, lda, b, ldb, 0, one, s.n)
		for _, threads := range []int{2, 3} {
			c := make([]float32, s.m*s.n)
			sgemmDNNL(threads, s.tA, s.tB, s.m, s.n, s.k, 1, a, lda, b, ldb, 0, c, s.n)
			for i := range c {
				if math.Float32bits(c[i]) != math.Float32bits(one[i]) {
					t.Fatalf("%+v on %d threads: C[%d] = %x, on one thread %x", s, threads, i, math.Float32bits(c[i]), math.Float32bits(one[i]))
				}
			}
		}
	}
}
