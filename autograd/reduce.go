package autograd

import (
	"slices"

	"github.com/sslzoo/sslzoo/tensor"
)

// normAxis resolves a possibly negative axis against ndim.
func normAxis(op string, axis, ndim int) int {
	if axis < -ndim || axis >= ndim {
		Failf(op, "axis %d out of range for %d dimensions", axis, ndim)
	}
	if axis < 0 {
		axis += ndim
	}
	return axis
}

// normAxes resolves axes (negative allowed) to a sorted list without
// duplicates; an empty list means every axis, as in ONNX ReduceSum.
func normAxes(op string, axes []int, ndim int) []int {
	if len(axes) == 0 {
		all := make([]int, ndim)
		for i := range all {
			all[i] = i
		}
		return all
	}
	out := make([]int, len(axes))
	for i, a := range axes {
		out[i] = normAxis(op, a, ndim)
	}
	slices.Sort(out)
	for i := 1; i < len(out); i++ {
		if out[i] == out[i-1] {
			Failf(op, "axis %d given twice in %v", out[i], axes)
		}
	}
	return out
}

// Sum adds x over axes (all axes when axes is empty). keepDim keeps the
// reduced axes with size 1.
func (tp *Tape) Sum(x *Var, axes []int, keepDim bool) *Var {
	return tp.reduce("Sum", x, axes, keepDim, false)
}

// Mean averages x over axes (all axes when axes is empty).
func (tp *Tape) Mean(x *Var, axes []int, keepDim bool) *Var {
	return tp.reduce("Mean", x, axes, keepDim, true)
}

// SumAll adds every element of x into a scalar (shape []).
func (tp *Tape) SumAll(x *Var) *Var { return tp.reduce("SumAll", x, nil, false, false) }

// MeanAll averages every element of x into a scalar (shape []).
func (tp *Tape) MeanAll(x *Var) *Var { return tp.reduce("MeanAll", x, nil, false, true) }

func (tp *Tape) reduce(op string, x *Var, axes []int, keepDim, mean bool) *Var {
	shape := x.Value.Shape
	ax := normAxes(op, axes, len(shape))
	kshape := slices.Clone(shape)
	count := 1
	for _, a := range ax {
		count *= shape[a]
		kshape[a] = 1
	}
	outShape := kshape
	if !keepDim {
		outShape = make([]int, 0, len(shape))
		for i, d := range shape {
			if !slices.Contains(ax, i) {
				outShape = append(outShape, d)
			}
		}
	}
	alpha := float32(1)
	if mean {
		// count == 0 gives NaN, like torch.mean of an empty tensor.
		alpha = 1 / float32(count)
	}
	out := tp.AllocZeroed(outShape...)
	if len(outShape) == 0 {
		out.Shape = []int{}
	}
	kst := broadcastStrides(kshape, shape)
	cst := contiguousStrides(shape)
	tp.accumulate(out.Data, kst, shape, accScale, alpha, x.Value.Data, cst, nil, nil, nil, nil)
	var attrs map[string]any
	if op == "Sum" || op == "Mean" {
		attrs = map[string]any{"axes": ax, "keepdims": keepDim}
	}
	return tp.Record(op, attrs, out, []*Var{x}, func(o *Var) {
		if gx := tp.GradOf(x); gx != nil {
			tp.accumulate(gx.Data, cst, shape, accScale, alpha, o.Grad.Data, kst, nil, nil, nil, nil)
		}
	})
}

// allocScalar returns a one-element output of shape [] (non-nil, so it
// prints and compares as the empty shape).
func (tp *Tape) allocScalar() *tensor.Tensor {
	t := tp.Alloc()
	t.Shape = []int{}
	return t
}

// Max takes the maximum of x along axis; the gradient flows to the first
// position holding the maximum. NaN wins, as in torch.max.
func (tp *Tape) Max(x *Var, axis int, keepDim bool) *Var {
	shape := x.Value.Shape
	axis = normAxis("Max", axis, len(shape))
	n := shape[axis]
	if n == 0 {
		Failf("Max", "axis %d of shape %v is empty", axis, shape)
	}
	outer, inner := tensor.Numel(shape[:axis]), tensor.Numel(shape[axis+1:])
	outShape := slices.Clone(shape)
	if keepDim {
		outShape[axis] = 1
	} else {
		outShape = slices.Delete(outShape, axis, axis+1)
	}
	out := tp.Alloc(outShape...)
	arg := make([]int32, outer*inner)
	xd, od := x.Value.Data, out.Data
	tensor.Parallel(outer, n*inner, func(lo, hi int) {
		for o := lo; o < hi; o++ {
			base := o * n * inner
			dst, am := od[o*inner:(o+1)*inner], arg[o*inner:(o+1)*inner]
			copy(dst, xd[base:base+inner])
			clear(am)
			for k := 1; k < n; k++ {
				row := xd[base+k*inner : base+(k+1)*inner]
				for j, v := range row {
					if v > dst[j] || (v != v && dst[j] == dst[j]) {
						dst[j], am[j] = v, int32(k)
					}
				}
			}
		}
	})
	return tp.Record("Max", map[string]any{"axis": axis, "keepdims": keepDim}, out, []*Var{x}, func(o *Var) {
		gx := tp.GradOf(x)
		if gx == nil {
			return
		}
		g := o.Grad.Data
		for oi := range outer {
			for j := range inner {
				gx.Data[(oi*n+int(arg[oi*inner+j]))*inner+j] += g[oi*inner+j]
			}
		}
	})
}
