//go:build cgo

package tensor

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>

// The CBLAS prototypes are declared here rather than taken from cblas.h so
// that the build needs no BLAS headers: the library is found at run time.
// CBLAS enums are plain ints in the C ABI.
typedef void (*sslzoo_sgemm_fn)(int order, int transA, int transB, int m, int n, int k,
	float alpha, const float *a, int lda, const float *b, int ldb,
	float beta, float *c, int ldc);
typedef void (*sslzoo_set_threads_fn)(int);
typedef int (*sslzoo_get_threads_fn)(void);
typedef char *(*sslzoo_get_config_fn)(void);

static void *sslzoo_lib;
static sslzoo_sgemm_fn sslzoo_sgemm;
static sslzoo_set_threads_fn sslzoo_set_threads;
static sslzoo_get_threads_fn sslzoo_get_threads;
static sslzoo_get_config_fn sslzoo_get_config;

// sslzoo_blas_open returns NULL on success, else why the library is unusable.
static const char *sslzoo_blas_open(const char *name) {
	void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		const char *e = dlerror();
		return e ? e : "dlopen failed";
	}
	void *f = dlsym(h, "cblas_sgemm");
	if (f == NULL) {
		dlclose(h);
		return "library does not export cblas_sgemm";
	}
	sslzoo_lib = h;
	sslzoo_sgemm = (sslzoo_sgemm_fn)f;
	sslzoo_set_threads = (sslzoo_set_threads_fn)dlsym(h, "openblas_set_num_threads");
	sslzoo_get_threads = (sslzoo_get_threads_fn)dlsym(h, "openblas_get_num_threads");
	sslzoo_get_config = (sslzoo_get_config_fn)dlsym(h, "openblas_get_config");
	return NULL;
}

static int sslzoo_has_threads(void) { return sslzoo_set_threads != NULL && sslzoo_get_threads != NULL; }
static void sslzoo_blas_set_threads(int n) { sslzoo_set_threads(n); }
static int sslzoo_blas_get_threads(void) { return sslzoo_get_threads(); }
static const char *sslzoo_blas_config(void) { return sslzoo_get_config ? sslzoo_get_config() : NULL; }

static void sslzoo_call_sgemm(int ta, int tb, int m, int n, int k, float alpha,
	const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc) {
	sslzoo_sgemm(101, ta ? 112 : 111, tb ? 112 : 111, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// sslzoo_raw_sgemm_ns times reps back-to-back square products straight from
// C, the floor that the Go call path is measured against.
static long long sslzoo_raw_sgemm_ns(int n, int reps, const float *a, const float *b, float *c) {
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int r = 0; r < reps; r++) {
		sslzoo_sgemm(101, 111, 111, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
}
*/
import "C"

import (
	"fmt"
	"strings"
	"time"
	"unsafe"
)

// loadCBLAS opens the first library in names that exports cblas_sgemm.
func loadCBLAS(names []string) blasInfo {
	var why []string
	for _, name := range names {
		cname := C.CString(name)
		errStr := C.sslzoo_blas_open(cname)
		C.free(unsafe.Pointer(cname))
		if errStr != nil {
			why = append(why, fmt.Sprintf("%s: %s", name, C.GoString(errStr)))
			continue
		}
		info := blasInfo{cblas: true, lib: name, threads: C.sslzoo_has_threads() != 0}
		if cfg := C.sslzoo_blas_config(); cfg != nil {
			info.config = strings.TrimSpace(C.GoString(cfg))
		}
		return info
	}
	return blasInfo{reason: "no C BLAS: " + strings.Join(why, "; ")}
}

// setLibraryThreads sets OpenBLAS's own thread count, where the library
// lets us.
func setLibraryThreads(n int) {
	if blasChosen.threads {
		C.sslzoo_blas_set_threads(C.int(n))
	}
}

// libraryThreads is OpenBLAS's own thread count, or 1 where unknown.
func libraryThreads() int {
	if !blasChosen.threads {
		return 1
	}
	return int(C.sslzoo_blas_get_threads())
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func sgemmCBLAS(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	C.sslzoo_call_sgemm(cbool(transA), cbool(transB), C.int(m), C.int(n), C.int(k), C.float(alpha),
		(*C.float)(unsafe.Pointer(&a[0])), C.int(lda),
		(*C.float)(unsafe.Pointer(&b[0])), C.int(ldb), C.float(beta),
		(*C.float)(unsafe.Pointer(&c[0])), C.int(ldc))
}

// cblasLoaded reports whether Sgemm goes to a C library.
func cblasLoaded() bool { return blasState().cblas }

// rawSgemm times reps calls of an n×n×n product made directly from C.
func rawSgemm(n, reps int, a, b, c []float32) time.Duration {
	return time.Duration(C.sslzoo_raw_sgemm_ns(C.int(n), C.int(reps),
		(*C.float)(unsafe.Pointer(&a[0])), (*C.float)(unsafe.Pointer(&b[0])), (*C.float)(unsafe.Pointer(&c[0]))))
}
