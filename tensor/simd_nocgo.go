//go:build !cgo

package tensor

// Without cgo the C kernels are absent and every kernel runs its Go form.
const haveSIMD = false

func reluC(o, x []float32)                   { reluGo(o, x) }
func reluInPlaceC(x []float32)               { reluGo(x, x) }
func hardSwishC(o, x []float32)              { hardSwishGo(o, x) }
func reluGradC(gx, g, o []float32, acc bool) { reluGradGo(gx, g, o, acc) }
func addC(o, a, b []float32)                 { addGo(o, a, b) }
func addToC(dst, src []float32)              { addToGo(dst, src) }
func addScalarC(o, a []float32, v float32)   { addScalarGo(o, a, v) }
func bnStatsC(x []float32, n, c, s, lo, hi int, mean, variance []float64) {
	bnStatsGo(x, n, c, s, lo, hi, mean, variance)
}
func bnApplyC(o, x []float32, n, c, s, lo, hi int, scale, shift []float32) {
	bnApplyGo(o, x, n, c, s, lo, hi, scale, shift)
}
func bnDotsC(dy, x []float32, n, c, s, lo, hi int, mean []float32, sdy, sdyx []float64) {
	bnDotsGo(dy, x, n, c, s, lo, hi, mean, sdy, sdyx)
}
func bnInputGradC(gx, dy, x []float32, n, c, s, lo, hi int, k, meanDy, c2, mean []float32, acc bool) {
	bnInputGradGo(gx, dy, x, n, c, s, lo, hi, k, meanDy, c2, mean, acc)
}
func sgdC(w, g, buf []float32, lr, wd, mom, damp float32, nesterov, fresh bool) {
	sgdGo(w, g, buf, lr, wd, mom, damp, nesterov, fresh)
}

func softmaxRowsC(o, x []float32, n int) bool                            { return false }
func geluTableC(o, x, tab []float32, intervals int, lo, hi float32) bool { return false }
func geluErfC(o, x []float32) bool                                       { return false }
func layerNormRowsC(o, x []float32, d int, w, b []float32, eps float32, stats []float32) bool {
	return false
}
