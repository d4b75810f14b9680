package autograd

import (
	"math"
	"unsafe"

	"github.com/sslzoo/sslzoo/tensor"
)

// ReLU returns max(x, 0); the gradient at 0 is 0, as in PyTorch. NaN
// passes through. The kernels are tensor.ReLU and tensor.ReLUGrad
// (vectorised C with cgo); relu32 and positiveMask below are their scalar
// forms.
func (tp *Tape) ReLU(x *Var) *Var {
	out := tp.Alloc(x.Value.Shape...)
	xd, od := x.Value.Data, out.Data
	tensor.Parallel(len(od), 1, func(lo, hi int) { tensor.ReLU(od[lo:hi], xd[lo:hi]) })
	return tp.Record("ReLU", nil, out, []*Var{x}, func(o *Var) {
		// Usually x feeds only this op: then its gradient is written, not
		// zeroed and accumulated.
		gx, fresh := tp.GradForWrite(x)
		if gx == nil {
			return
		}
		g, gd := o.Grad.Data, gx.Data
		tensor.Parallel(len(od), 1, func(lo, hi int) { tensor.ReLUGrad(gd[lo:hi], g[lo:hi], od[lo:hi], !fresh) })
	})
}

// ReLUInPlace is ReLU written over x's own buffer, as PyTorch's
// inplace=True: one activation less to write and later read. The caller
// promises that nothing else reads x, and that the op which made x does not
// read its own output in the backward pass (BatchNorm, convolutions and
// Add read their inputs only). A buffer the tape does not own (an input, a
// weight) is never overwritten: then it is plain ReLU.
func (tp *Tape) ReLUInPlace(x *Var) *Var {
	if !tp.Owns(x.Value.Data) {
		return tp.ReLU(x)
	}
	od := x.Value.Data
	tensor.Parallel(len(od), 1, func(lo, hi int) { tensor.ReLUInPlace(od[lo:hi]) })
	// ReLU's gradient needs only where the output is positive, which the
	// overwritten buffer still tells.
	return tp.Record("ReLU", nil, x.Value, []*Var{x}, func(o *Var) {
		gx, fresh := tp.GradForWrite(x)
		if gx == nil {
			return
		}
		g, gd := o.Grad.Data, gx.Data
		tensor.Parallel(len(od), 1, func(lo, hi int) { tensor.ReLUGrad(gd[lo:hi], g[lo:hi], od[lo:hi], !fresh) })
	})
}

// Activations have random signs, so ReLU avoids branches (a mispredicted
// branch per element costs more than the rest of the loop): both helpers
// build a bit mask with integer arithmetic instead.

// relu32 zeroes negative x (including -0) but keeps NaN, as PyTorch does.
func relu32(v float32) float32 {
	b := math.Float32bits(v)
	neg := uint32(int32(b) >> 31)
	// All ones unless b's magnitude bits exceed +Inf's, i.e. v is NaN.
	notNaN := uint32(int32((b&0x7fffffff)-0x7f800001) >> 31)
	return math.Float32frombits(b &^ (neg & notNaN))
}

// positiveMask is all ones when v > 0 (and not NaN), else 0.
func positiveMask(v float32) uint32 {
	// v > 0 exactly when its bits lie in [1, 0x7f800000].
	// Subtracting 1 wraps 0 (and -0's 0x80000000 stays large) past it.
	u := int64(math.Float32bits(v) - 1)
	return uint32((u - 0x7f800000) >> 63)
}

// geluTabFlat is geluTab as one slice, for tensor.GELUTable.
var geluTabFlat = unsafe.Slice(&geluTab[0][0], len(geluTab)*len(geluTab[0]))

// GELU is the exact Gaussian error linear unit x*Φ(x) = 0.5·x·(1+erf(x/√2)),
// torch.nn.functional.gelu with approximate="none", to float32 precision
// (not the tanh approximation).
func (tp *Tape) GELU(x *Var) *Var {
	return tp.unary("GELU", map[string]any{"approximate": "none"}, x, 6,
		func(o, x []float32) {
			if tensor.GELUTable(o, x, geluTabFlat, geluIntervals, geluLo, geluHi) {
				return
			}
			x = x[:len(o)]
			for i := range o {
				o[i] = gelu32(x[i])
			}
		},
		func(gx, g, x, _ []float32) {
			g, x = g[:len(gx)], x[:len(gx)]
			for i := range gx {
				gx[i] += g[i] * geluGrad32(x[i])
			}
		})
}

// Sigmoid returns 1/(1+e^-x).
func (tp *Tape) Sigmoid(x *Var) *Var {
	return tp.unary("Sigmoid", nil, x, 10,
		func(o, x []float32) {
			x = x[:len(o)]
			for i := range o {
				o[i] = 1 / (1 + exp32(-x[i]))
			}
		},
		func(gx, g, _, o []float32) {
			g, o = g[:len(gx)], o[:len(gx)]
			for i := range gx {
				gx[i] += g[i] * o[i] * (1 - o[i])
			}
		})
}

// Tanh returns the hyperbolic tangent of x.
func (tp *Tape) Tanh(x *Var) *Var {
	return tp.unary("Tanh", nil, x, 20,
		func(o, x []float32) {
			x = x[:len(o)]
			for i := range o {
				o[i] = float32(math.Tanh(float64(x[i])))
			}
		},
		func(gx, g, _, o []float32) {
			g, o = g[:len(gx)], o[:len(gx)]
			for i := range gx {
				gx[i] += g[i] * (1 - o[i]*o[i])
			}
		})
}

// Erf is the Gauss error function, element-wise (ONNX Erf). The engine's
// GELU op is the fused form; Erf exists for imported ONNX graphs, whose
// exact GELU arrives as Div, Erf, Add, Mul, Mul.
func (tp *Tape) Erf(x *Var) *Var {
	return tp.unary("Erf", nil, x, 12,
		func(o, x []float32) {
			x = x[:len(o)]
			for i := range o {
				o[i] = erf32(x[i])
			}
		},
		func(gx, g, x, _ []float32) {
			g, x = g[:len(gx)], x[:len(gx)]
			for i := range gx {
				// d/dx erf(x) = 2/sqrt(pi) * exp(-x^2)
				gx[i] += g[i] * 1.1283791670955126 * exp32(-x[i]*x[i])
			}
		})
}
