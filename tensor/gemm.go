package tensor

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// Sgemm computes C = alpha*op(A)*op(B) + beta*C on row-major matrices, where
// op(X) is X or its transpose, op(A) is m×k, op(B) is k×n and C is m×n.
// lda, ldb and ldc are the row strides of A, B and C as stored. With beta=0
// C's old contents are ignored (NaNs included), so C may be an uninitialised
// pool buffer.
//
// The work goes to a C library loaded at run time, oneDNN's sgemm or
// OpenBLAS (see blasState and BLASBackend), and to gonum's pure-Go kernel
// when neither loads. Bad dimensions or short slices are programming
// errors and panic, as in gonum: letting them through would have the C
// library read or write outside the slices.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		// Nothing to multiply; BLAS libraries disagree on whether they
		// touch A and B here, so keep it in Go.
		scaleRows(m, n, beta, c, ldc)
		return
	}
	if use := blasState().use; use != backendGo {
		sgemmSplit(use, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	sgemmGonum(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// checkGemm panics unless the strides fit the shapes and every slice is
// long enough for the elements the call will touch.
func checkGemm(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("tensor.Sgemm: negative size m=%d n=%d k=%d", m, n, k))
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	check := func(name string, rows, cols int, x []float32, ld int) {
		if ld < max(1, cols) {
			panic(fmt.Sprintf("tensor.Sgemm: ld%s=%d < %d columns", name, ld, cols))
		}
		if rows > 0 && cols > 0 && len(x) < (rows-1)*ld+cols {
			panic(fmt.Sprintf("tensor.Sgemm: %s has %d elements, needs %d for %dx%d with ld=%d", name, len(x), (rows-1)*ld+cols, rows, cols, ld))
		}
	}
	if m == 0 || n == 0 {
		check("c", m, n, c, ldc)
		return
	}
	check("a", ar, ac, a, lda)
	check("b", br, bc, b, ldb)
	check("c", m, n, c, ldc)
}

// scaleRows sets C = beta*C, with beta=0 meaning "overwrite with zeros".
func scaleRows(m, n int, beta float32, c []float32, ldc int) {
	if beta == 1 {
		return
	}
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

func sgemmGonum(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	tA, tB := blas.NoTrans, blas.NoTrans
	if transA {
		tA = blas.Trans
	}
	if transB {
		tB = blas.Trans
	}
	gonum.Implementation{}.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// gemmBackend is a GEMM implementation Sgemm can dispatch to.
type gemmBackend int

const (
	backendGo       gemmBackend = iota // gonum's pure-Go kernel
	backendOpenBLAS                    // cblas_sgemm from OpenBLAS (or another C BLAS)
	backendOneDNN                      // dnnl_sgemm from oneDNN
)

// blasInfo is the outcome of choosing a GEMM backend, made once per process.
type blasInfo struct {
	use     gemmBackend // what Sgemm runs on
	cblas   bool        // a C BLAS library is loaded (used, or kept as BenchGemm's reference)
	lib     string      // the file name it was opened by
	config  string      // openblas_get_config(), when exported
	threads bool        // the library exports openblas_set/get_num_threads
	dnnl    bool        // oneDNN's sgemm is resolved
	dnnlLib string      // its description, or why it is unavailable
	reason  string      // why the pure-Go path is in use, when it is
	note    string      // a remark on the choice for BLASBackend, e.g. an unknown SSLZOO_BLAS value
}

var (
	blasOnce   sync.Once
	blasChosen blasInfo
)

// blasLibraries are tried in order. libblas.so.3 is often an alternatives
// link to OpenBLAS or to the reference BLAS; either serves if it exports
// cblas_sgemm.
var blasLibraries = []string{"libopenblas.so.0", "libopenblas.so", "libblas.so.3"}

// blasState loads the GEMM libraries and picks the backend. SSLZOO_BLAS
// forces one: "go" (or "gonum"), "openblas", "onednn", or the path of a C
// BLAS library. When the forced one cannot be loaded, the pure-Go kernel
// runs and BLASBackend says why. By default oneDNN's sgemm is used when
// oneDNN loads (see the measurements at gemmDefault), then OpenBLAS, then
// gonum. OpenBLAS is loaded in every mode but "go", so that BenchGemm can
// time it as the reference.
func blasState() *blasInfo {
	blasOnce.Do(func() {
		s := &blasChosen
		raw := strings.TrimSpace(os.Getenv("SSLZOO_BLAS"))
		env := strings.ToLower(raw)
		if env == "go" || env == "gonum" {
			s.reason = "SSLZOO_BLAS=" + raw
			return
		}
		named := strings.Contains(env, "/") || strings.Contains(env, ".so")
		if named {
			// A library named explicitly is the only one tried.
			*s = loadCBLAS([]string{raw})
		} else {
			*s = loadCBLAS(blasLibraries)
		}
		if s.cblas {
			// One thread inside the library: see sgemmSplit.
			setLibraryThreads(1)
		}
		cblasWhy := s.reason
		s.reason = ""
		if env != "openblas" && !named {
			s.dnnlLib, s.dnnl = loadDNNLGemm()
		}
		switch {
		case env == "onednn" || env == "dnnl":
			if s.dnnl {
				s.use = backendOneDNN
			} else {
				s.reason = "SSLZOO_BLAS=" + raw + ", but " + s.dnnlLib
			}
		case env == "openblas" || named:
			if s.cblas {
				s.use = backendOpenBLAS
			} else {
				s.reason = "SSLZOO_BLAS=" + raw + ", but " + cblasWhy
			}
		default:
			if env != "" && env != "auto" {
				s.note = "SSLZOO_BLAS=" + raw + " not understood (want go, openblas, onednn or a library path)"
			}
			switch {
			case s.dnnl && gemmDefault == backendOneDNN, s.dnnl && !s.cblas:
				s.use = backendOneDNN
			case s.cblas:
				s.use = backendOpenBLAS
			default:
				s.reason = cblasWhy + "; " + s.dnnlLib
			}
		}
		if s.use != backendGo {
			initGemmThreads(s.use)
		}
	})
	return &blasChosen
}

// gemmDefault is the backend preferred when both C libraries load: oneDNN
// for every shape. Measured by BenchmarkGemmBackends on the 2-core AVX-512
// VM (Intel family 6 model 207), where OpenBLAS 0.3.21 does not know the
// CPU and runs its SSE3 Prescott kernel: oneDNN JITs AVX-512 kernels from
// CPUID and ran 4-9x faster on square 128³-2048³, im2col, ViT/BERT Linear
// shapes, 3-3.5x on batched 65×65×64 attention products, 2-3x on 32³ and
// 1×64×64 (about 5x on one thread, in every run). Only at 16³ and below
// (m·n·k <= 4096) does oneDNN's fixed cost per call (about 0.6 µs, against
// OpenBLAS's 0.2) make it 0.3-0.9x of OpenBLAS, while batched 8×8×32
// attention products tied; such calls take a microsecond either way, so
// one rule covers all shapes.
const gemmDefault = backendOneDNN

// BLASBackend describes the GEMM backend in use, for logs and `sslzoo
// doctor`: the library, its build configuration and thread count, or the
// pure-Go fallback and why it was chosen.
func BLASBackend() string {
	s := blasState()
	var desc string
	switch s.use {
	case backendOneDNN:
		desc = fmt.Sprintf("%s, up to %d threads per call", s.dnnlLib, BLASThreads())
	case backendOpenBLAS:
		lib := "cblas"
		if s.config != "" {
			lib = s.config
		}
		desc = fmt.Sprintf("%s (%s), up to %d threads per call", lib, s.lib, BLASThreads())
	default:
		desc = "gonum (pure Go; " + s.reason + ")"
	}
	if s.note != "" {
		desc += "; " + s.note
	}
	return desc
}

// BLASWarning returns a one-line warning when the C library is running a
// kernel far below what the CPU supports, or "" when nothing looks wrong.
// OpenBLAS 0.3.21 does not know recent Intel models (e.g. family 6 model
// 207) and falls back to its SSE3 "Prescott" kernel, about 5x slower than
// its AVX-512 one here; OPENBLAS_CORETYPE=SkylakeX selects the right one.
// We only report this: the environment is the user's to set.
func BLASWarning() string {
	s := blasState()
	if s.use != backendOpenBLAS {
		return ""
	}
	return kernelWarning(s.config, cpuHasFlag)
}

// kernelWarning is BLASWarning's rule, given the library's configuration
// string and a CPU feature test.
func kernelWarning(config string, hasFlag func(string) bool) string {
	slow := false
	for _, core := range []string{"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Katmai", "Coppermine", "Northwood", "Banias"} {
		if strings.Contains(" "+config+" ", " "+core+" ") {
			slow = true
		}
	}
	switch {
	case !slow:
		return ""
	case hasFlag("avx512f"):
		return "OpenBLAS chose a pre-AVX kernel on an AVX-512 CPU (" + config + "); set OPENBLAS_CORETYPE=SkylakeX for several times faster GEMM"
	case hasFlag("avx2"):
		return "OpenBLAS chose a pre-AVX kernel on an AVX2 CPU (" + config + "); set OPENBLAS_CORETYPE=Haswell for several times faster GEMM"
	}
	return ""
}

// cpuHasFlag reports whether /proc/cpuinfo lists flag; false where that
// file does not exist.
func cpuHasFlag(flag string) bool {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "flags") {
			for _, f := range strings.Fields(line) {
				if f == flag {
					return true
				}
			}
			return false
		}
	}
	return false
}

// SetBLASThreads sets how many cores one GEMM may use on the C library
// (see sgemmSplit). It has no effect on the pure-Go backend, whose
// parallelism follows GOMAXPROCS. n < 1 is taken as 1.
func SetBLASThreads(n int) {
	blasState() // so that initialisation cannot overwrite n later
	gemmThreads.Store(int32(max(n, 1)))
}

// BLASThreads is how many cores one GEMM may use on the C library, or 0
// when no C library is in use.
func BLASThreads() int {
	if blasState().use == backendGo {
		return 0
	}
	return int(gemmThreads.Load())
}

// GEMM threading. The number of cores a product gets is decided here, by
// free slots (below). A small product (up to crewGemmMaxWork) then runs as
// single-threaded column blocks on the crew (crew.go) when it is free;
// otherwise oneDNN runs it on that many OpenMP threads (dnnlOwnThreads),
// while OpenBLAS runs single-threaded and we cut
// the product into row (or column) blocks that run as concurrent
// single-threaded calls. For oneDNN both ways measured the same within
// noise (BenchmarkGemmBackends: onednn-omp vs onednn-split, wall time and
// CPU time per GFLOP, and the Go pass after each GEMM showed no cost from
// spinning OpenMP workers); its own threads win on simplicity: one cgo
// call, no goroutines, B packed once. For OpenBLAS, measured on the VM
// (BenchmarkSgemmThreads, BenchmarkBatchedGemm), this matches OpenBLAS's own
// threads on one large product, and it is what lets several products run at
// once on goroutines (attention heads, conv images), which loses to plain
// serial calls when OpenBLAS's threads are on: its pool contends with the
// goroutines, and its workers spin after each call, taking cores from the Go
// code that runs between GEMMs.
//
// blasSlots caps how many C calls run at once across the process, so nested
// parallelism (a split product inside a goroutine that is one of many)
// never puts more threads on the cores than there are cores: a call takes
// extra slots only when they are free right now.
var (
	gemmThreads atomic.Int32
	blasSlots   chan struct{}
)

// gemmMinWorkPerPart is the least m*n*k worth its own core. OpenBLAS
// itself keeps products up to 65536*4 on one thread; for oneDNN 64³ on one
// thread ran as fast as on two.
const gemmMinWorkPerPart = 256 * 1024

// crewGemmMaxWork is the largest m*n*k run as blocks on the crew.
const crewGemmMaxWork = 64 << 20

// gemmAlign keeps block edges on multiples of the kernels' register tile.
const gemmAlign = 16

func initGemmThreads(use gemmBackend) {
	n := runtime.GOMAXPROCS(0)
	// Each library's usual variable caps its threads, as users expect.
	env := "OPENBLAS_NUM_THREADS"
	if use == backendOneDNN {
		env = "OMP_NUM_THREADS"
	}
	if v, err := strconv.Atoi(os.Getenv(env)); err == nil && v > 0 {
		n = v
	}
	gemmThreads.Store(int32(n))
	blasSlots = make(chan struct{}, max(runtime.GOMAXPROCS(0), runtime.NumCPU(), n))
}

// sgemmSplit runs one product on the C library use, on as many cores as
// there are free slots (up to BLASThreads and the work's size): as one
// multi-threaded oneDNN call, or cut into that many single-threaded blocks.
func sgemmSplit(use gemmBackend, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	blasSlots <- struct{}{}
	parts := 1
	// On the crew (small products) columns split better: each thread packs
	// half of B rather than all of it. qkv of ViT-tiny at batch 1 (197x576x192)
	// ran in 146 us on two column blocks, 200 on two row blocks, 270 on one
	// thread. Big products go to oneDNN's own threads, which split them
	// better than two blocks do (ViT-tiny at batch 64: 1289 ms against 1402).
	onCrew := m*n*k <= crewGemmMaxWork && crewSize() > 1
	splitM := m >= n
	if onCrew {
		splitM = n < gemmAlign*crewSize()
	}
	dim := n
	if splitM {
		dim = m
	}
	want := min(int(gemmThreads.Load()), m*n*k/gemmMinWorkPerPart, dim/gemmAlign)
	if crewActive() {
		// A part of a crew job (one head of a batched product, say):
		// the other cores are running the job's other parts.
		want = 1
	}
take:
	for parts < want {
		select {
		case blasSlots <- struct{}{}:
			parts++
		default:
			break take
		}
	}
	// Deferred: a library failure panics, and a caller that recovers must
	// not find the slots gone.
	defer func() {
		for range parts {
			<-blasSlots
		}
	}()
	if parts == 1 {
		sgemmOn(use, 1, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	block := (dim + parts - 1) / parts
	block = (block + gemmAlign - 1) / gemmAlign * gemmAlign
	blocks := (dim + block - 1) / block
	run := func(i int) {
		lo, hi := i*block, min((i+1)*block, dim)
		if splitM {
			// Rows lo..hi of op(A) and of C.
			aOff := lo * lda
			if transA {
				aOff = lo
			}
			sgemmOn(use, 1, transA, transB, hi-lo, n, k, alpha, a[aOff:], lda, b, ldb, beta, c[lo*ldc:], ldc)
		} else {
			// Columns lo..hi of op(B) and of C.
			bOff := lo
			if transB {
				bOff = lo * ldb
			}
			sgemmOn(use, 1, transA, transB, m, hi-lo, k, alpha, a, lda, b[bOff:], ldb, beta, c[lo:], ldc)
		}
	}
	switch {
	case onCrew && parts == crewSize() && runOnCrew(blocks, run):
		// Single-threaded blocks on the crew's hot threads.
	case use == backendOneDNN && dnnlOwnThreads:
		crewHushed(func() { sgemmOn(use, parts, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) })
	default:
		var wg sync.WaitGroup
		for i := 1; i < blocks; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				run(i)
			}()
		}
		run(0)
		wg.Wait()
	}
}

// dnnlOwnThreads hands a product's free cores to oneDNN's own OpenMP
// threads in one call, instead of cutting it into single-threaded blocks.
var dnnlOwnThreads = true

// sgemmOn runs one product on one C backend with the given thread count
// (OpenBLAS always runs single-threaded; see sgemmSplit).
func sgemmOn(use gemmBackend, threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if use == backendOneDNN {
		sgemmDNNL(threads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	sgemmCBLAS(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
