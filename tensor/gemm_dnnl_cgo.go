//go:build cgo && linux

package tensor

// oneDNN's sgemm as a GEMM backend. The library itself is opened by the
// convolution binding (loadDNNL in dnnl_cgo.go); here we only look up
// dnnl_sgemm in the copy already in the process (RTLD_NOLOAD), so that
// both share one instance, one version check and one SSLZOO_DNNL switch.
//
// oneDNN JITs its GEMM kernels from the CPUID feature bits, so it runs
// AVX-512 code on CPUs that OpenBLAS 0.3.21's model table does not know
// (where OpenBLAS falls back to its SSE3 kernel).
//
// Threads: Debian's build uses OpenMP, and dnnl_sgemm runs on
// omp_get_max_threads() threads of the calling OS thread. We set that
// count around each call (see szg_sgemm) rather than leave it to the
// OpenMP default, because the number of free cores is decided by
// sgemmSplit's slots, and because Go moves goroutines between OS threads:
// the setting must not leak into the convolution primitives that may run
// on the same thread later.

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

typedef int (*szg_sgemm_fn)(char, char, int64_t, int64_t, int64_t, float,
	const float *, int64_t, const float *, int64_t, float, float *, int64_t);
typedef void (*szg_set_threads_fn)(int);
typedef int (*szg_get_threads_fn)(void);

static szg_sgemm_fn szg_dnnl_sgemm;
static szg_set_threads_fn szg_omp_set;
static szg_get_threads_fn szg_omp_get;

// szg_open finds dnnl_sgemm (and OpenMP's thread controls, which dlsym
// reaches through the library's dependencies) in the already loaded lib.
// It returns NULL on success, else what is missing.
static const char *szg_open(const char *lib) {
	void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
	if (h == NULL) return "library is not loaded";
	szg_dnnl_sgemm = (szg_sgemm_fn)dlsym(h, "dnnl_sgemm");
	szg_omp_set = (szg_set_threads_fn)dlsym(h, "omp_set_num_threads");
	szg_omp_get = (szg_get_threads_fn)dlsym(h, "omp_get_max_threads");
	// dlopen above took a reference; the conv binding holds its own.
	dlclose(h);
	if (szg_dnnl_sgemm == NULL) return "library does not export dnnl_sgemm";
	return NULL;
}

static int szg_has_omp(void) { return szg_omp_set != NULL && szg_omp_get != NULL; }
static int szg_omp_max_threads(void) { return szg_omp_get ? szg_omp_get() : 0; }

// szg_sgemm runs one product on nthr OpenMP threads (0: leave the count
// alone) and restores the calling thread's count afterwards.
static int szg_sgemm(int nthr, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
	const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
	if (szg_dnnl_sgemm == NULL) return -1; // never call through a null pointer
	int old = 0;
	if (nthr > 0 && szg_omp_get) {
		old = szg_omp_get();
		if (old != nthr) szg_omp_set(nthr);
	}
	int st = szg_dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
	if (nthr > 0 && szg_omp_get && old != nthr) szg_omp_set(old);
	return st;
}

// szg_raw_sgemm_ns times reps back-to-back square products on nthr
// threads straight from C.
static long long szg_raw_sgemm_ns(int nthr, int n, int reps, const float *a, const float *b, float *c) {
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int r = 0; r < reps; r++) {
		szg_sgemm(nthr, 0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
}
*/
import "C"

import (
	"fmt"
	"time"
	"unsafe"
)

// loadDNNLGemm resolves oneDNN's sgemm once oneDNN is loaded. It returns
// a description for BLASBackend, or why the backend is unavailable.
func loadDNNLGemm() (desc string, ok bool) {
	s := dnnlState()
	if !s.ok {
		return s.reason, false
	}
	name := C.CString(s.lib)
	defer C.free(unsafe.Pointer(name))
	if e := C.szg_open(name); e != nil {
		return fmt.Sprintf("onednn sgemm unavailable: %s: %s", s.lib, C.GoString(e)), false
	}
	if C.szg_has_omp() == 0 {
		// Without the OpenMP controls we cannot keep its threads off the
		// cores our own split uses.
		return fmt.Sprintf("onednn sgemm unavailable: %s has no OpenMP thread control", s.lib), false
	}
	return fmt.Sprintf("onednn %s sgemm (%s)", s.version, s.lib), true
}

// sgemmDNNL runs one product through dnnl_sgemm on threads OpenMP threads.
func sgemmDNNL(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	st := C.szg_sgemm(C.int(threads), cbool(transA), cbool(transB), C.int64_t(m), C.int64_t(n), C.int64_t(k), C.float(alpha),
		(*C.float)(unsafe.Pointer(&a[0])), C.int64_t(lda),
		(*C.float)(unsafe.Pointer(&b[0])), C.int64_t(ldb), C.float(beta),
		(*C.float)(unsafe.Pointer(&c[0])), C.int64_t(ldc))
	if st == -1 {
		panic("tensor: sgemmDNNL called before oneDNN's sgemm was loaded")
	}
	if st != 0 {
		// checkGemm has validated every argument, so this is a library
		// failure (out of memory); wrong numbers must not pass silently.
		panic(fmt.Sprintf("tensor.Sgemm: dnnl_sgemm m=%d n=%d k=%d transA=%v transB=%v failed with status %d", m, n, k, transA, transB, int(st)))
	}
}

// ompMaxThreads is OpenMP's thread count for the calling OS thread, or 0
// when oneDNN's sgemm is not resolved.
func ompMaxThreads() int { return int(C.szg_omp_max_threads()) }

// rawDNNLSgemm times reps n×n×n products on threads threads made directly
// from C.
func rawDNNLSgemm(threads, n, reps int, a, b, c []float32) time.Duration {
	return time.Duration(C.szg_raw_sgemm_ns(C.int(threads), C.int(n), C.int(reps),
		(*C.float)(unsafe.Pointer(&a[0])), (*C.float)(unsafe.Pointer(&b[0])), (*C.float)(unsafe.Pointer(&c[0]))))
}
