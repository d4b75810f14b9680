//go:build cgo

package tensor

// #cgo CFLAGS: -O3 -Wno-psabi
// #cgo LDFLAGS: -lm
// #include "simd_cgo.h"
import "C"

import "unsafe"

// haveSIMD reports whether the C kernels of simd_cgo.c are built in.
const haveSIMD = true

func szF(s []float32) *C.float {
	if len(s) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(unsafe.SliceData(s)))
}

func szD(s []float64) *C.double {
	if len(s) == 0 {
		return nil
	}
	return (*C.double)(unsafe.Pointer(unsafe.SliceData(s)))
}

func szBool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func reluC(o, x []float32) { C.sz_relu(szF(o), szF(x), C.size_t(len(o))) }

func reluInPlaceC(x []float32) { C.sz_relu_inplace(szF(x), C.size_t(len(x))) }

func hardSwishC(o, x []float32) { C.sz_hardswish(szF(o), szF(x), C.size_t(len(o))) }

func reluGradC(gx, g, o []float32, acc bool) {
	C.sz_relu_grad(szF(gx), szF(g), szF(o), C.size_t(len(gx)), szBool(acc))
}

func addC(o, a, b []float32) { C.sz_add(szF(o), szF(a), szF(b), C.size_t(len(o))) }

func addToC(dst, src []float32) { C.sz_add_to(szF(dst), szF(src), C.size_t(len(dst))) }

func addScalarC(o, a []float32, v float32) {
	C.sz_add_scalar(szF(o), szF(a), C.float(v), C.size_t(len(o)))
}

func bnStatsC(x []float32, n, c, s, lo, hi int, mean, variance []float64) {
	C.sz_bn_stats(szF(x), C.size_t(n), C.size_t(c), C.size_t(s), C.size_t(lo), C.size_t(hi), szD(mean), szD(variance))
}

func bnApplyC(o, x []float32, n, c, s, lo, hi int, scale, shift []float32) {
	C.sz_bn_apply(szF(o), szF(x), C.size_t(n), C.size_t(c), C.size_t(s), C.size_t(lo), C.size_t(hi), szF(scale), szF(shift))
}

func bnDotsC(dy, x []float32, n, c, s, lo, hi int, mean []float32, sdy, sdyx []float64) {
	C.sz_bn_dots(szF(dy), szF(x), C.size_t(n), C.size_t(c), C.size_t(s), C.size_t(lo), C.size_t(hi), szF(mean), szD(sdy), szD(sdyx))
}

func bnInputGradC(gx, dy, x []float32, n, c, s, lo, hi int, k, meanDy, c2, mean []float32, acc bool) {
	C.sz_bn_dx(szF(gx), szF(dy), szF(x), C.size_t(n), C.size_t(c), C.size_t(s), C.size_t(lo), C.size_t(hi),
		szF(k), szF(meanDy), szF(c2), szF(mean), szBool(acc))
}

func sgdC(w, g, buf []float32, lr, wd, mom, damp float32, nesterov, fresh bool) {
	C.sz_sgd(szF(w), szF(g), szF(buf), C.size_t(len(w)), C.float(lr), C.float(wd), C.float(mom), C.float(damp), szBool(nesterov), szBool(fresh))
}

func softmaxRowsC(o, x []float32, n int) bool {
	C.sz_softmax_rows(szF(o), szF(x), C.size_t(len(o)/n), C.size_t(n))
	return true
}

func geluErfC(o, x []float32) bool {
	if len(o) == 0 {
		return true
	}
	C.sz_gelu_erf(szF(o), szF(x), C.size_t(len(o)))
	return true
}

func geluTableC(o, x, tab []float32, intervals int, lo, hi float32) bool {
	C.sz_gelu(szF(o), szF(x), C.size_t(len(o)), szF(tab), C.int(intervals), C.float(lo), C.float(hi))
	return true
}

func layerNormRowsC(o, x []float32, d int, w, b []float32, eps float32, stats []float32) bool {
	var wp, bp, sp *C.float
	if w != nil {
		wp = szF(w)
	}
	if b != nil {
		bp = szF(b)
	}
	if stats != nil {
		sp = szF(stats)
	}
	C.sz_layernorm_rows(szF(o), szF(x), C.size_t(len(o)/d), C.size_t(d), wp, bp, C.float(eps), sp)
	return true
}
