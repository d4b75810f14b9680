//go:build !cgo || !linux

package tensor

import "time"

// Without cgo (or off Linux) oneDNN is never loaded, so its sgemm is not
// a GEMM backend either.

func loadDNNLGemm() (string, bool) {
	return dnnlState().reason, false
}

func sgemmDNNL(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	panic("tensor: sgemmDNNL called in a build without oneDNN")
}

func rawDNNLSgemm(threads, n, reps int, a, b, c []float32) time.Duration {
	panic("tensor: rawDNNLSgemm called in a build without oneDNN")
}

func ompMaxThreads() int { return 0 }
