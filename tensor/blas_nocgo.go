//go:build !cgo

package tensor

import "time"

// Without cgo there is no way to call a C library: Sgemm always runs on
// gonum. Rebuild with CGO_ENABLED=1 (and a C compiler) to use oneDNN or
// OpenBLAS.

func loadCBLAS([]string) blasInfo {
	return blasInfo{reason: "built without cgo (CGO_ENABLED=0)"}
}

func setLibraryThreads(int) {}

func libraryThreads() int { return 1 }

func cblasLoaded() bool { return false }

func sgemmCBLAS(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	panic("tensor: sgemmCBLAS called in a build without cgo")
}

func rawSgemm(n, reps int, a, b, c []float32) time.Duration {
	panic("tensor: rawSgemm called in a build without cgo")
}
