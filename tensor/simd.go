package tensor

// Vectorised kernels for the memory-bound element-wise work of training
// (ReLU, BatchNorm, Add, the SGD step). With cgo they run the C code in
// simd_cgo.c, which GCC vectorises (AVX-512 or AVX2 picked at load time);
// the Go compiler does not vectorise, and these loops ran at 2-2.5x the
// time of PyTorch's. Without cgo, or for slices too short to repay the cgo
// call (about 50-100 ns), they run the Go loops in simd_go.go. Element-wise
// results are bit-identical either way; sums differ only in rounding order.
//
// Each call runs on the calling goroutine: callers split large work over
// cores with Parallel. Per-channel BatchNorm kernels take x laid out
// [n, c, s] (s values per channel and sample, contiguous), work on channels
// [lo, hi), and index their per-channel arrays by channel.

// simdMin is the least element count for which a cgo call pays off.
const simdMin = 256

// ReLU sets o[i] = max(x[i], 0), with -0 giving +0 and NaN kept (PyTorch's
// torch.relu). len(x) >= len(o).
func ReLU(o, x []float32) {
	x = x[:len(o)]
	if len(o) < simdMin {
		reluGo(o, x)
		return
	}
	reluC(o, x)
}

// ReLUInPlace is ReLU(x, x).
func ReLUInPlace(x []float32) {
	if len(x) < simdMin {
		reluGo(x, x)
		return
	}
	reluInPlaceC(x)
}

// HardSwish sets o[i] = x[i]*Clip(x[i]+3, 0, 6)/6, computed in that order
// (the Add, Clip, Mul and Div an exporter writes), so that the result is
// the four ops' to the bit. NaN stays NaN.
func HardSwish(o, x []float32) {
	x = x[:len(o)]
	if len(o) < simdMin {
		hardSwishGo(o, x)
		return
	}
	hardSwishC(o, x)
}

// ReLUGrad sets (acc false) or adds to (acc true) gx the gradient of ReLU:
// g where the ReLU output o is > 0, else 0.
func ReLUGrad(gx, g, o []float32, acc bool) {
	g, o = g[:len(gx)], o[:len(gx)]
	if len(gx) < simdMin {
		reluGradGo(gx, g, o, acc)
		return
	}
	reluGradC(gx, g, o, acc)
}

// Add sets o = a + b element-wise.
func Add(o, a, b []float32) {
	a, b = a[:len(o)], b[:len(o)]
	if len(o) < simdMin {
		addGo(o, a, b)
		return
	}
	addC(o, a, b)
}

// AddTo adds src into dst; the two must not overlap.
func AddTo(dst, src []float32) {
	src = src[:len(dst)]
	if len(dst) < simdMin {
		addToGo(dst, src)
		return
	}
	addToC(dst, src)
}

// AddScalar sets o = a + v.
func AddScalar(o, a []float32, v float32) {
	a = a[:len(o)]
	if len(o) < simdMin {
		addScalarGo(o, a, v)
		return
	}
	addScalarC(o, a, v)
}

// bnCheck bounds-checks a per-channel kernel's arguments once, so that the
// C code can index freely: callers slice each [n, c, s] buffer to n*c*s
// (which panics when one is short), and the per-channel arrays need c.
func bnCheck(lo, hi, c int, per [][]float32, _ ...[]float32) {
	if lo < 0 || hi > c || lo > hi {
		panic("tensor: BatchNorm channel range out of bounds")
	}
	// Lengths, not a read of a[c-1]: other goroutines may be writing the
	// per-channel arrays' other ranges meanwhile.
	for _, a := range per {
		if len(a) < c {
			panic("tensor: BatchNorm per-channel array shorter than the channels")
		}
	}
}

// BNStats writes the mean and biased variance of each channel in [lo, hi)
// of x ([n, c, s]) into mean[ch] and variance[ch], in two passes (the mean,
// then squared deviations from it), float32 within a contiguous run and
// float64 across runs.
func BNStats(x []float32, n, c, s, lo, hi int, mean, variance []float64) {
	if lo >= hi {
		return
	}
	_, _ = mean[hi-1], variance[hi-1]
	bnCheck(lo, hi, c, nil, x[:n*c*s])
	if n*s*(hi-lo) < simdMin {
		bnStatsGo(x, n, c, s, lo, hi, mean, variance)
		return
	}
	bnStatsC(x, n, c, s, lo, hi, mean, variance)
}

// BNApply sets o = x*scale[ch] + shift[ch] over channels [lo, hi).
func BNApply(o, x []float32, n, c, s, lo, hi int, scale, shift []float32) {
	if lo >= hi {
		return
	}
	bnCheck(lo, hi, c, [][]float32{scale, shift}, o[:n*c*s], x[:n*c*s])
	if n*s*(hi-lo) < simdMin {
		bnApplyGo(o, x, n, c, s, lo, hi, scale, shift)
		return
	}
	bnApplyC(o, x, n, c, s, lo, hi, scale, shift)
}

// BNDots writes sdy[ch] = sum(dy) and sdyx[ch] = sum(dy*(x-mean[ch])) over
// channels [lo, hi): the two reductions of BatchNorm's backward.
func BNDots(dy, x []float32, n, c, s, lo, hi int, mean []float32, sdy, sdyx []float64) {
	if lo >= hi {
		return
	}
	_, _ = sdy[hi-1], sdyx[hi-1]
	bnCheck(lo, hi, c, [][]float32{mean}, dy[:n*c*s], x[:n*c*s])
	if n*s*(hi-lo) < simdMin {
		bnDotsGo(dy, x, n, c, s, lo, hi, mean, sdy, sdyx)
		return
	}
	bnDotsC(dy, x, n, c, s, lo, hi, mean, sdy, sdyx)
}

// BNInputGrad sets (acc false) or adds to (acc true) gx the input gradient
// of batch norm over channels [lo, hi):
// k[ch]*(dy - meanDy[ch] - (x-mean[ch])*c2[ch]) with batch statistics, or
// k[ch]*dy when c2 is nil (running statistics: meanDy, mean and x unused).
func BNInputGrad(gx, dy, x []float32, n, c, s, lo, hi int, k, meanDy, c2, mean []float32, acc bool) {
	if lo >= hi {
		return
	}
	if c2 != nil {
		bnCheck(lo, hi, c, [][]float32{k, meanDy, c2, mean}, gx[:n*c*s], dy[:n*c*s], x[:n*c*s])
	} else {
		bnCheck(lo, hi, c, [][]float32{k}, gx[:n*c*s], dy[:n*c*s])
		meanDy, mean = nil, nil
	}
	if n*s*(hi-lo) < simdMin {
		bnInputGradGo(gx, dy, x, n, c, s, lo, hi, k, meanDy, c2, mean, acc)
		return
	}
	bnInputGradC(gx, dy, x, n, c, s, lo, hi, k, meanDy, c2, mean, acc)
}

// SGDUpdate applies torch.optim.SGD's update to one parameter: d = g +
// wd*w; with momentum, buf = d when fresh else mom*buf + (1-damp)*d, and d
// becomes d + mom*buf (nesterov) or buf; then w -= lr*d. buf is unused when
// mom is 0.
func SGDUpdate(w, g, buf []float32, lr, wd, mom, damp float32, nesterov, fresh bool) {
	g = g[:len(w)]
	if mom != 0 {
		buf = buf[:len(w)]
	}
	if len(w) < simdMin {
		sgdGo(w, g, buf, lr, wd, mom, damp, nesterov, fresh)
		return
	}
	sgdC(w, g, buf, lr, wd, mom, damp, nesterov, fresh)
}

// The transcendental kernels below take their formulas from autograd
// (exp32, gelu32), which owns the Go loops; these are the vectorised forms.
// Each reports false when the C kernels are not built in or the input is
// too short to repay the call, and the caller then runs its Go loop.

// SoftmaxRows writes the softmax of every contiguous n-long row of x into
// o (len(o) a multiple of n). Values and exponentials match autograd's
// softmaxRow; the row sum adds in vector lanes, so results may differ from
// the Go loop in the last bit.
func SoftmaxRows(o, x []float32, n int) bool {
	if n <= 0 || len(o) < simdMin || len(o)%n != 0 {
		return false
	}
	return softmaxRowsC(o, x[:len(o)], n)
}

// LayerNormRows normalises every contiguous d-long row of x into o (len(o)
// a multiple of d) with biased variance and eps inside the square root,
// then applies w and b where not nil (each d long). stats, where not nil,
// gets each row's mean and 1/std (2 per row). The sums add in vector
// lanes, so results may differ from autograd's float64 loop in the last
// bit. It reports false, writing nothing, without cgo or for inputs too
// short to repay the call.
func LayerNormRows(o, x []float32, d int, w, b []float32, eps float32, stats []float32) bool {
	if d <= 0 || len(o) < simdMin || len(o)%d != 0 || len(x) < len(o) ||
		(w != nil && len(w) < d) || (b != nil && len(b) < d) || (stats != nil && len(stats) < 2*len(o)/d) {
		return false
	}
	return layerNormRowsC(o, x[:len(o)], d, w, b, eps, stats)
}

// GELUErf writes the exact GELU, x·Φ(x), of x into o (len(o) values), for
// inference: erfc from a Chebyshev fit, within about 3e-7·(1+|y|) of the
// true value, vectorised without tables. It reports false without cgo;
// the caller then uses autograd's GELU. An empty o tells which it is.
func GELUErf(o, x []float32) bool { return geluErfC(o, x[:len(o)]) }

// GELUTable evaluates autograd's piecewise-polynomial GELU: tab holds
// intervals rows of 5 coefficients in u = x - c, c the centre of the row's
// 0.25-wide interval above lo; x >= hi gives x, x <= lo (and NaN) 0*x. The
// results are bit-identical to the Go loop.
func GELUTable(o, x, tab []float32, intervals int, lo, hi float32) bool {
	if len(o) < simdMin || len(tab) < 5*intervals {
		return false
	}
	return geluTableC(o, x[:len(o)], tab, intervals, lo, hi)
}
