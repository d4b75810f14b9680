package autograd

import (
	"math"

	"github.com/sslzoo/sslzoo/tensor"
)

// Softmax normalises exp(x) along axis, subtracting the maximum first so
// large logits cannot overflow.
func (tp *Tape) Softmax(x *Var, axis int) *Var { return tp.softmax("Softmax", x, axis, false) }

// LogSoftmax is log(Softmax(x, axis)), computed as x - max - log Σ exp(x - max).
func (tp *Tape) LogSoftmax(x *Var, axis int) *Var {
	return tp.softmax("LogSoftmax", x, axis, true)
}

// axisSplit views shape as [outer, n, inner] around axis.
func axisSplit(shape []int, axis int) (outer, n, inner int) {
	return tensor.Numel(shape[:axis]), shape[axis], tensor.Numel(shape[axis+1:])
}

func (tp *Tape) softmax(op string, x *Var, axis int, logOut bool) *Var {
	shape := x.Value.Shape
	axis = normAxis(op, axis, len(shape))
	outer, n, inner := axisSplit(shape, axis)
	out := tp.Alloc(shape...)
	xd, od := x.Value.Data, out.Data
	// Rows are the outer*inner lines along axis; line (o, j) starts at
	// o*n*inner + j and steps by inner.
	tensor.Parallel(outer*inner, n*10, func(lo, hi int) {
		if inner == 1 && !logOut && tensor.SoftmaxRows(od[lo*n:hi*n], xd[lo*n:hi*n], n) {
			return
		}
		for r := lo; r < hi; r++ {
			o, j := r/inner, r%inner
			base := o*n*inner + j
			if inner == 1 {
				softmaxRow(od[base:base+n], xd[base:base+n], logOut)
			} else {
				softmaxStrided(od[base:], xd[base:], n, inner, logOut)
			}
		}
	})
	return tp.Record(op, map[string]any{"axis": axis}, out, []*Var{x}, func(ov *Var) {
		gx := tp.GradOf(x)
		if gx == nil {
			return
		}
		g := ov.Grad.Data
		tensor.Parallel(outer*inner, n*6, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				o, j := r/inner, r%inner
				base := o*n*inner + j
				if inner == 1 {
					softmaxGradRow(gx.Data[base:base+n], g[base:base+n], od[base:base+n], logOut)
					continue
				}
				// Strided line: same formulas as softmaxGradRow.
				var s float64
				for k := 0; k < n; k++ {
					i := base + k*inner
					if logOut {
						s += float64(g[i])
					} else {
						s += float64(g[i]) * float64(od[i])
					}
				}
				sf := float32(s)
				for k := 0; k < n; k++ {
					i := base + k*inner
					if logOut {
						gx.Data[i] += g[i] - exp32(od[i])*sf
					} else {
						gx.Data[i] += od[i] * (g[i] - sf)
					}
				}
			}
		})
	})
}

// softmaxRow writes softmax (or log-softmax) of the contiguous row x into o.
func softmaxRow(o, x []float32, logOut bool) {
	x = x[:len(o)]
	m := float32(math.Inf(-1))
	for _, v := range x {
		if v > m {
			m = v
		}
	}
	if math.IsInf(float64(m), -1) {
		// All -inf (a fully masked row): PyTorch gives NaN; so do we.
		m = 0
	}
	var s float64
	if logOut {
		for _, v := range x {
			s += float64(exp32(v - m))
		}
		// (x - m) - log s: folding m into log s first would round it at
		// m's magnitude and lose the small terms' precision.
		l := float32(math.Log(s))
		for i := range o {
			o[i] = (x[i] - m) - l
		}
		return
	}
	for i := range o {
		e := exp32(x[i] - m)
		o[i] = e
		s += float64(e)
	}
	inv := float32(1 / s)
	for i := range o {
		o[i] *= inv
	}
}

func softmaxStrided(o, x []float32, n, stride int, logOut bool) {
	m := float32(math.Inf(-1))
	for k := 0; k < n; k++ {
		if v := x[k*stride]; v > m {
			m = v
		}
	}
	if math.IsInf(float64(m), -1) {
		m = 0
	}
	var s float64
	for k := 0; k < n; k++ {
		e := exp32(x[k*stride] - m)
		if !logOut {
			o[k*stride] = e
		}
		s += float64(e)
	}
	if logOut {
		l := float32(math.Log(s))
		for k := 0; k < n; k++ {
			o[k*stride] = (x[k*stride] - m) - l
		}
		return
	}
	inv := float32(1 / s)
	for k := 0; k < n; k++ {
		o[k*stride] *= inv
	}
}

// softmaxGradRow accumulates the input gradient of one contiguous row:
// softmax: gx = y*(g - Σ g*y); log-softmax: gx = g - exp(y)*Σ g.
func softmaxGradRow(gx, g, y []float32, logOut bool) {
	g, y = g[:len(gx)], y[:len(gx)]
	if logOut {
		s := float32(sumf(g))
		for i := range gx {
			gx[i] += g[i] - exp32(y[i])*s
		}
		return
	}
	s := float32(dotf(g, y))
	for i := range gx {
		gx[i] += y[i] * (g[i] - s)
	}
}
