package tensor

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// Sgemm computes C = alpha*op(A)*op(B) + beta*C on row-major matrices, where
// op(X) is X or its transpose, op(A) is m×k, op(B) is k×n and C is m×n.
// lda, ldb and ldc are the row strides of A, B and C as stored. With beta=0
// C's old contents are ignored (NaNs included), so C may be an uninitialised
// pool buffer.
//
// The work goes to OpenBLAS when it could be loaded at run time (see
// BLASBackend), and to gonum's pure-Go kernel otherwise. Bad dimensions or
// short slices are programming errors and panic, as in gonum: letting them
// through would have the C library read or write outside the slices.
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
	if blasState().cblas {
		sgemmCBLAS(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
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

// blasInfo is the outcome of choosing a GEMM backend, made once per process.
type blasInfo struct {
	cblas   bool   // a C BLAS library is loaded and used
	lib     string // the file name it was opened by
	config  string // openblas_get_config(), when exported
	threads bool   // the library exports openblas_set/get_num_threads
	reason  string // why the pure-Go path is in use, when it is
}

var (
	blasOnce   sync.Once
	blasChosen blasInfo
)

// blasLibraries are tried in order. libblas.so.3 is often an alternatives
// link to OpenBLAS or to the reference BLAS; either serves if it exports
// cblas_sgemm.
var blasLibraries = []string{"libopenblas.so.0", "libopenblas.so", "libblas.so.3"}

func blasState() *blasInfo {
	blasOnce.Do(func() {
		env := strings.TrimSpace(os.Getenv("SSLZOO_BLAS"))
		switch {
		case env == "go" || env == "gonum":
			blasChosen.reason = "SSLZOO_BLAS=" + env
			return
		case strings.Contains(env, "/") || strings.Contains(env, ".so"):
			// A library named explicitly is the only one tried.
			blasChosen = loadCBLAS([]string{env})
		default:
			blasChosen = loadCBLAS(blasLibraries)
		}
		if blasChosen.cblas {
			setDefaultThreads()
		}
	})
	return &blasChosen
}

// BLASBackend describes the GEMM backend in use, for logs and `sslzoo
// doctor`: the library, its build configuration and thread count, or the
// pure-Go fallback and why it was chosen.
func BLASBackend() string {
	s := blasState()
	if !s.cblas {
		return "gonum (pure Go; " + s.reason + ")"
	}
	desc := "cblas"
	if s.config != "" {
		desc = s.config
	}
	if s.threads {
		desc += fmt.Sprintf(", %d threads", blasThreads())
	}
	return desc + " (" + s.lib + ")"
}

// SetBLASThreads sets how many threads the C BLAS library uses per call.
// It has no effect on the pure-Go backend, whose parallelism follows
// GOMAXPROCS. n < 1 is taken as 1.
func SetBLASThreads(n int) {
	s := blasState()
	if s.cblas && s.threads {
		setBLASThreads(max(n, 1))
	}
}

// BLASThreads is the C BLAS library's current thread count, or 0 when no
// C library is in use.
func BLASThreads() int {
	s := blasState()
	if !s.cblas || !s.threads {
		return 0
	}
	return blasThreads()
}
