package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
)

type gemmFunc func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)

// gemmBackends lists every kernel this build can run, so that the C path
// and the pure-Go path are both checked in one test run.
func gemmBackends(t *testing.T) map[string]gemmFunc {
	fs := map[string]gemmFunc{"Sgemm": Sgemm, "gonum": sgemmGonum}
	if cblasLoaded() {
		fs["cblas"] = sgemmCBLAS
	} else {
		t.Logf("no C BLAS loaded (%s)", BLASBackend())
	}
	if s := blasState(); s.dnnl {
		// Both thread settings: one core, and oneDNN's own OpenMP split.
		for _, threads := range []int{1, 2} {
			fs[fmt.Sprintf("onednn-%dt", threads)] = func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
				sgemmDNNL(threads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
			}
		}
	} else {
		t.Logf("oneDNN sgemm not loaded (%s)", s.dnnlLib)
	}
	return fs
}

// refGemm is C = alpha*op(A)*op(B) + beta*C in float64, written from the
// definition and independent of every kernel under test.
func refGemm(transA, transB bool, m, n, k int, alpha float64, a []float32, lda int, b []float32, ldb int, beta float64, c []float32, ldc int) []float64 {
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			s := 0.0
			for p := 0; p < k; p++ {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			v := alpha * s
			if beta != 0 {
				v += beta * float64(c[i*ldc+j])
			}
			out[i*n+j] = v
		}
	}
	return out
}

func randSlice(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

func TestSgemmMatchesFloat64(t *testing.T) {
	type dims struct{ m, n, k int }
	sizes := []dims{{1, 1, 1}, {3, 5, 7}, {17, 13, 31}, {64, 33, 9}, {1, 65, 129}, {129, 1, 40}, {70, 90, 110},
		{150, 70, 60}, {40, 300, 50}} // the last two are big enough to be split over cores
	rng := rand.New(rand.NewPCG(3, 4))
	for name, gemm := range gemmBackends(t) {
		for _, d := range sizes {
			for _, ta := range []bool{false, true} {
				for _, tb := range []bool{false, true} {
					for _, ab := range [][2]float32{{1, 0}, {-0.5, 1}, {2, 0.25}} {
						for _, pad := range []int{0, 3} {
							alpha, beta := ab[0], ab[1]
							ar, ac := d.m, d.k
							if ta {
								ar, ac = d.k, d.m
							}
							br, bc := d.k, d.n
							if tb {
								br, bc = d.n, d.k
							}
							lda, ldb, ldc := ac+pad, bc+2*pad, d.n+pad
							a := randSlice(rng, (ar-1)*lda+ac)
							b := randSlice(rng, (br-1)*ldb+bc)
							c := randSlice(rng, d.m*ldc)
							if beta == 0 {
								// beta=0 must overwrite, not scale: NaN*0 would leak through.
								for i := range c {
									c[i] = float32(math.NaN())
								}
							}
							c0 := append([]float32(nil), c...)
							want := refGemm(ta, tb, d.m, d.n, d.k, float64(alpha), a, lda, b, ldb, float64(beta), c0, ldc)
							gemm(ta, tb, d.m, d.n, d.k, alpha, a, lda, b, ldb, beta, c, ldc)
							tol := 1e-5 * float64(d.k+4)
							label := fmt.Sprintf("%s m=%d n=%d k=%d tA=%v tB=%v alpha=%g beta=%g pad=%d", name, d.m, d.n, d.k, ta, tb, alpha, beta, pad)
							for i := 0; i < d.m; i++ {
								for j := 0; j < ldc; j++ {
									got := c[i*ldc+j]
									if j >= d.n {
										// Padding between rows is not ours to write.
										if !(got == c0[i*ldc+j] || math.IsNaN(float64(got)) && math.IsNaN(float64(c0[i*ldc+j]))) {
											t.Fatalf("%s: wrote padding C[%d,%d]", label, i, j)
										}
										continue
									}
									w := want[i*d.n+j]
									if math.Abs(float64(got)-w) > tol*(1+math.Abs(w)) || math.IsNaN(float64(got)) {
										t.Fatalf("%s: C[%d,%d] = %g, want %g", label, i, j, got, w)
									}
								}
							}
						}
					}
				}
			}
		}
	}
}

func TestSgemmHandCase(t *testing.T) {
	// [1 2; 3 4] @ [5 6; 7 8] = [19 22; 43 50], worked by hand.
	a := []float32{1, 2, 3, 4}
	b := []float32{5, 6, 7, 8}
	for name, gemm := range gemmBackends(t) {
		c := []float32{1, 1, 1, 1}
		gemm(false, false, 2, 2, 2, 1, a, 2, b, 2, 1, c, 2)
		want := []float32{20, 23, 44, 51}
		for i := range c {
			if c[i] != want[i] {
				t.Errorf("%s: got %v, want %v", name, c, want)
				break
			}
		}
	}
}

func TestSgemmEmptyK(t *testing.T) {
	// k=0 leaves beta*C; beta=0 clears even NaNs.
	c := []float32{float32(math.NaN()), 2, 3, 4}
	Sgemm(false, false, 2, 2, 0, 1, nil, 1, nil, 2, 0, c, 2)
	for _, v := range c {
		if v != 0 {
			t.Fatalf("beta=0, k=0: got %v, want zeros", c)
		}
	}
	c = []float32{1, 2, 3, 4}
	Sgemm(true, true, 2, 2, 0, 1, nil, 2, nil, 1, 0.5, c, 2)
	if c[0] != 0.5 || c[3] != 2 {
		t.Fatalf("beta=0.5, k=0: got %v", c)
	}
	Sgemm(false, false, 0, 3, 4, 1, nil, 4, make([]float32, 12), 3, 0, nil, 3) // m=0: no-op
}

func TestSgemmRejectsShortSlices(t *testing.T) {
	cases := []struct {
		name string
		call func()
	}{
		{"short a", func() {
			Sgemm(false, false, 3, 3, 3, 1, make([]float32, 8), 3, make([]float32, 9), 3, 0, make([]float32, 9), 3)
		}},
		{"short b transposed", func() {
			Sgemm(false, true, 3, 4, 3, 1, make([]float32, 9), 3, make([]float32, 11), 3, 0, make([]float32, 12), 4)
		}},
		{"short c", func() {
			Sgemm(false, false, 3, 3, 3, 1, make([]float32, 9), 3, make([]float32, 9), 3, 0, make([]float32, 8), 3)
		}},
		{"lda too small", func() {
			Sgemm(false, false, 2, 2, 3, 1, make([]float32, 9), 2, make([]float32, 6), 2, 0, make([]float32, 4), 2)
		}},
		{"negative m", func() { Sgemm(false, false, -1, 2, 2, 1, nil, 2, nil, 2, 0, nil, 2) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "tensor.Sgemm") {
					t.Fatalf("want a tensor.Sgemm panic, got %v", r)
				}
			}()
			tc.call()
		})
	}
}

// TestBLASEnvForcesGo runs this test binary again with each SSLZOO_BLAS
// setting and checks the backend the child reports, and that the child's
// Sgemm still gives the right numbers on it.
func TestBLASEnvForcesGo(t *testing.T) {
	if os.Getenv("SSLZOO_BLAS_CHILD") != "" {
		// [1 2; 3 4] @ [5 6; 7 8] = [19 22; 43 50]; 300x300 splits over cores.
		c := make([]float32, 4)
		Sgemm(false, false, 2, 2, 2, 1, []float32{1, 2, 3, 4}, 2, []float32{5, 6, 7, 8}, 2, 0, c, 2)
		n := 300
		ones, big := make([]float32, n*n), make([]float32, n*n)
		for i := range ones {
			ones[i] = 1
		}
		Sgemm(false, true, n, n, n, 1, ones, n, ones, n, 0, big, n)
		fmt.Printf("backend=%s\nproduct=%v big=%v,%v\n", BLASBackend(), c, big[0], big[n*n-1])
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Skip("no executable path:", err)
	}
	s := blasState()
	cases := []struct {
		env  []string
		want string // what the backend line must contain
		skip bool   // the library this case needs is missing here
	}{
		{[]string{"SSLZOO_BLAS=go"}, "backend=gonum (pure Go; SSLZOO_BLAS=go)", false},
		{[]string{"SSLZOO_BLAS=openblas"}, "(" + s.lib + "), up to", !s.cblas},
		{[]string{"SSLZOO_BLAS=onednn"}, "backend=onednn ", !s.dnnl},
		{[]string{"SSLZOO_BLAS=onednn", "SSLZOO_DNNL=off"}, "backend=gonum (pure Go; SSLZOO_BLAS=onednn, but onednn off: SSLZOO_DNNL=off)", false},
		{[]string{"SSLZOO_BLAS=fastest"}, "SSLZOO_BLAS=fastest not understood", false},
		{[]string{"SSLZOO_BLAS=/nonexistent/libblas.so"}, "backend=gonum (pure Go; SSLZOO_BLAS=/nonexistent/libblas.so, but", false},
	}
	for _, tc := range cases {
		if tc.skip {
			t.Logf("%v: library not loaded here, skipped", tc.env)
			continue
		}
		cmd := exec.Command(exe, "-test.run=^TestBLASEnvForcesGo$")
		cmd.Env = append(append(os.Environ(), "SSLZOO_BLAS_CHILD=1", "SSLZOO_DNNL="), tc.env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v child: %v\n%s", tc.env, err, out)
		}
		if !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), "product=[19 22 43 50] big=300,300") {
			t.Errorf("child with %v reported:\n%s\nwant %q and the right products", tc.env, out, tc.want)
		}
	}
	t.Logf("this process: %s", BLASBackend())
}

func TestSetBLASThreads(t *testing.T) {
	if !cblasLoaded() || BLASThreads() == 0 {
		t.Skipf("no thread control: %s", BLASBackend())
	}
	old := BLASThreads()
	defer SetBLASThreads(old)
	SetBLASThreads(1)
	if got := BLASThreads(); got != 1 {
		t.Fatalf("after SetBLASThreads(1): %d threads", got)
	}
	SetBLASThreads(0)
	if got := BLASThreads(); got != 1 {
		t.Fatalf("after SetBLASThreads(0): %d threads, want 1", got)
	}
	SetBLASThreads(2)
	if got := libraryThreads(); got != 1 {
		t.Fatalf("OpenBLAS's own pool has %d threads, want 1 (we split products ourselves)", got)
	}
}

// TestSgemmConcurrentSplit runs split-sized products from many goroutines
// at once on each C backend, with several thread settings, and checks each against its
// float64 reference and that every concurrency slot is handed back.
func TestSgemmConcurrentSplit(t *testing.T) {
	s := blasState()
	var uses []gemmBackend
	if s.cblas {
		uses = append(uses, backendOpenBLAS)
	}
	if s.dnnl {
		uses = append(uses, backendOneDNN)
	}
	if len(uses) == 0 || s.use == backendGo {
		t.Skipf("no C GEMM: %s", BLASBackend())
	}
	old, oldUse := BLASThreads(), s.use
	defer func() { SetBLASThreads(old); s.use = oldUse }()
	for _, use := range uses {
		// Tests in this package do not run in parallel, so switching the
		// backend here races with no other Sgemm.
		s.use = use
		concurrentSplit(t, use)
	}
}

func concurrentSplit(t *testing.T, use gemmBackend) {
	rng := rand.New(rand.NewPCG(5, 5))
	type job struct {
		m, n, k, threads int
		tA, tB           bool
	}
	jobs := []job{{200, 60, 70, 2, false, true}, {50, 400, 40, 3, true, false}, {130, 130, 40, 4, true, true}, {64, 64, 64, 1, false, false}}
	for _, j := range jobs {
		SetBLASThreads(j.threads)
		ar, ac := j.m, j.k
		if j.tA {
			ar, ac = j.k, j.m
		}
		br, bc := j.k, j.n
		if j.tB {
			br, bc = j.n, j.k
		}
		a, b := randSlice(rng, ar*ac), randSlice(rng, br*bc)
		want := refGemm(j.tA, j.tB, j.m, j.n, j.k, 1, a, ac, b, bc, 0, nil, j.n)
		errs := make(chan error, 6)
		for range 6 {
			go func() {
				c := make([]float32, j.m*j.n)
				Sgemm(j.tA, j.tB, j.m, j.n, j.k, 1, a, ac, b, bc, 0, c, j.n)
				for i, w := range want {
					if math.Abs(float64(c[i])-w) > 1e-4*(1+math.Abs(w)) {
						errs <- fmt.Errorf("backend %d, %+v: C[%d] = %g, want %g", use, j, i, c[i], w)
						return
					}
				}
				errs <- nil
			}()
		}
		for range 6 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := len(blasSlots); n != 0 {
		t.Fatalf("backend %d: %d concurrency slots still held after all calls returned", use, n)
	}
}

func TestKernelWarning(t *testing.T) {
	flags := func(have ...string) func(string) bool {
		return func(f string) bool { return strings.Contains(strings.Join(have, " "), f) }
	}
	cases := []struct {
		config string
		flags  func(string) bool
		want   string // substring; "" means no warning
	}{
		{"OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Prescott MAX_THREADS=64", flags("avx2", "avx512f"), "OPENBLAS_CORETYPE=SkylakeX"},
		{"OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Prescott MAX_THREADS=64", flags("avx2"), "OPENBLAS_CORETYPE=Haswell"},
		{"OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Prescott MAX_THREADS=64", flags("sse3"), ""},
		{"OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64", flags("avx2", "avx512f"), ""},
		{"OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64", flags("avx2"), ""},
		{"", flags("avx512f"), ""},
	}
	for _, c := range cases {
		got := kernelWarning(c.config, c.flags)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%q: got %q, want %q", c.config, got, c.want)
		}
	}
	t.Logf("this machine: %q", BLASWarning())
}
