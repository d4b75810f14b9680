package autograd

import (
	"slices"

	"github.com/sslzoo/sslzoo/tensor"
)

// Reshape returns x with another shape holding the same elements; one
// dimension may be -1 and is inferred. The output shares x's buffer (no
// copy): no op writes into its inputs.
func (tp *Tape) Reshape(x *Var, shape ...int) *Var {
	s, err := tensor.InferShape(x.Value.Numel(), shape)
	if err != nil {
		Failf("Reshape", "x shape %v to %v: %v", x.Value.Shape, shape, err)
	}
	out := &tensor.Tensor{Shape: s, Data: x.Value.Data}
	// "shape" keeps the caller's -1 so export can stay batch-agnostic.
	attrs := map[string]any{"shape": slices.Clone(shape), "out_shape": slices.Clone(s)}
	return tp.Record("Reshape", attrs, out, []*Var{x}, func(o *Var) {
		if gx, fresh := tp.GradForWrite(x); fresh {
			copy(gx.Data, o.Grad.Data)
		} else if gx != nil {
			addTo(gx.Data, o.Grad.Data)
		}
	})
}

// addTo adds src into dst (equal lengths), in parallel when large.
func addTo(dst, src []float32) {
	tensor.Parallel(len(dst), 1, func(lo, hi int) {
		d, s := dst[lo:hi], src[lo:hi]
		for i := range d {
			d[i] += s[i]
		}
	})
}

// Transpose permutes the axes of x: output axis i is input axis perm[i]
// (torch.permute, ONNX Transpose). The result is materialised.
func (tp *Tape) Transpose(x *Var, perm ...int) *Var {
	shape := x.Value.Shape
	if len(perm) != len(shape) {
		Failf("Transpose", "perm %v for x shape %v: need %d axes", perm, shape, len(shape))
	}
	seen := make([]bool, len(perm))
	for _, p := range perm {
		if p < 0 || p >= len(perm) || seen[p] {
			Failf("Transpose", "perm %v is not a permutation of 0..%d", perm, len(perm)-1)
		}
		seen[p] = true
	}
	perm = slices.Clone(perm)
	outShape := make([]int, len(perm))
	inv := make([]int, len(perm))
	for i, p := range perm {
		outShape[i] = shape[p]
		inv[p] = i
	}
	out := tp.Alloc(outShape...)
	permute(out.Data, x.Value.Data, shape, perm, false)
	return tp.Record("Transpose", map[string]any{"perm": perm}, out, []*Var{x}, func(o *Var) {
		if gx, fresh := tp.GradForWrite(x); gx != nil {
			permute(gx.Data, o.Grad.Data, outShape, inv, !fresh)
		}
	})
}

// transposeTile is the block edge for cache-friendly 2-D transposes.
const transposeTile = 32

// permute writes (acc: adds) src, of shape srcShape, permuted by perm into
// the contiguous dst.
func permute(dst, src []float32, srcShape, perm []int, acc bool) {
	outShape := make([]int, len(perm))
	sst := contiguousStrides(srcShape)
	pst := make([]int, len(perm))
	for i, p := range perm {
		outShape[i] = srcShape[p]
		pst[i] = sst[p]
	}
	p := makePlan(outShape, contiguousStrides(outShape), pst)
	nd := len(p.dims)
	n := p.inner
	switch {
	case p.innerStride(1) == 1:
		// Whole runs stay contiguous (e.g. [B,T,H,D] -> [B,H,T,D]).
		p.forRows(1, func(c *cursor, lo, hi int) {
			for r := lo; r < hi; r++ {
				d, s := dst[c.off[0]:c.off[0]+n], src[c.off[1]:c.off[1]+n]
				if acc {
					for i := range d {
						d[i] += s[i]
					}
				} else {
					copy(d, s)
				}
				c.next()
			}
		})
	case nd >= 2 && p.st[1][nd-2] == 1:
		// A batch of 2-D transposes: out[o][r][c] = src[o + r + c*cs].
		rs, cs := p.dims[nd-2], p.dims[nd-1]
		srcC := p.st[1][nd-1]
		outerDims := p.dims[:nd-2]
		outer := tensor.Numel(outerDims)
		rowBlocks := (rs + transposeTile - 1) / transposeTile
		tensor.Parallel(outer*rowBlocks, transposeTile*cs, func(lo, hi int) {
			for b := lo; b < hi; b++ {
				o, rb := b/rowBlocks, b%rowBlocks
				// Offsets of outer index o (few axes; once per tile row).
				dOff, sOff, rem := o*rs*cs, 0, o
				for d := len(outerDims) - 1; d >= 0; d-- {
					sOff += (rem % outerDims[d]) * p.st[1][d]
					rem /= outerDims[d]
				}
				r0, r1 := rb*transposeTile, min((rb+1)*transposeTile, rs)
				for c0 := 0; c0 < cs; c0 += transposeTile {
					c1 := min(c0+transposeTile, cs)
					for r := r0; r < r1; r++ {
						d := dst[dOff+r*cs+c0 : dOff+r*cs+c1]
						s := src[sOff+r+c0*srcC:]
						if acc {
							for i := range d {
								d[i] += s[i*srcC]
							}
						} else {
							for i := range d {
								d[i] = s[i*srcC]
							}
						}
					}
				}
			}
		})
	default:
		ss := p.innerStride(1)
		p.forRows(2, func(c *cursor, lo, hi int) {
			for r := lo; r < hi; r++ {
				d, s := dst[c.off[0]:c.off[0]+n], src[c.off[1]:]
				for i := range d {
					if acc {
						d[i] += s[i*ss]
					} else {
						d[i] = s[i*ss]
					}
				}
				c.next()
			}
		})
	}
}

// Concat joins xs along axis; all other dimensions must agree.
func (tp *Tape) Concat(xs []*Var, axis int) *Var {
	if len(xs) == 0 {
		Failf("Concat", "no inputs")
	}
	first := xs[0].Value.Shape
	axis = normAxis("Concat", axis, len(first))
	outShape := slices.Clone(first)
	outShape[axis] = 0
	for i, x := range xs {
		s := x.Value.Shape
		if len(s) != len(first) {
			Failf("Concat", "input %d shape %v vs input 0 shape %v: ranks differ", i, s, first)
		}
		for d := range s {
			if d != axis && s[d] != first[d] {
				Failf("Concat", "input %d shape %v vs input 0 shape %v: axis %d differs", i, s, first, d)
			}
		}
		outShape[axis] += s[axis]
	}
	outer := tensor.Numel(first[:axis])
	post := tensor.Numel(first[axis+1:])
	rowOut := outShape[axis] * post
	out := tp.Alloc(outShape...)
	od := out.Data
	tensor.Parallel(outer, rowOut, func(lo, hi int) {
		for o := lo; o < hi; o++ {
			off := o * rowOut
			for _, x := range xs {
				n := x.Value.Shape[axis] * post
				copy(od[off:off+n], x.Value.Data[o*n:(o+1)*n])
				off += n
			}
		}
	})
	inputs := slices.Clone(xs)
	return tp.Record("Concat", map[string]any{"axis": axis}, out, inputs, func(o *Var) {
		g := o.Grad.Data
		start := 0
		for _, x := range inputs {
			n := x.Value.Shape[axis] * post
			if gx := tp.GradOf(x); gx != nil {
				s := start
				tensor.Parallel(outer, n, func(lo, hi int) {
					for oi := lo; oi < hi; oi++ {
						d := gx.Data[oi*n : (oi+1)*n]
						src := g[oi*rowOut+s : oi*rowOut+s+n]
						for i := range d {
							d[i] += src[i]
						}
					}
				})
			}
			start += n
		}
	})
}

// Slice takes x[start:end] along axis (negative indices count from the
// end, as in Python; step 1).
func (tp *Tape) Slice(x *Var, axis, start, end int) *Var {
	shape := x.Value.Shape
	axis = normAxis("Slice", axis, len(shape))
	dim := shape[axis]
	if start < 0 {
		start += dim
	}
	if end < 0 {
		end += dim
	}
	if start < 0 || end > dim || start > end {
		Failf("Slice", "x shape %v: range [%d:%d] out of bounds on axis %d", shape, start, end, axis)
	}
	outShape := slices.Clone(shape)
	outShape[axis] = end - start
	outer := tensor.Numel(shape[:axis])
	post := tensor.Numel(shape[axis+1:])
	in, n := dim*post, (end-start)*post
	off := start * post
	out := tp.Alloc(outShape...)
	xd, od := x.Value.Data, out.Data
	tensor.Parallel(outer, n, func(lo, hi int) {
		for o := lo; o < hi; o++ {
			copy(od[o*n:(o+1)*n], xd[o*in+off:o*in+off+n])
		}
	})
	attrs := map[string]any{"axis": axis, "start": start, "end": end}
	return tp.Record("Slice", attrs, out, []*Var{x}, func(o *Var) {
		gx := tp.GradOf(x)
		if gx == nil {
			return
		}
		g := o.Grad.Data
		tensor.Parallel(outer, n, func(lo, hi int) {
			for oi := lo; oi < hi; oi++ {
				d, s := gx.Data[oi*in+off:oi*in+off+n], g[oi*n:(oi+1)*n]
				for i := range d {
					d[i] += s[i]
				}
			}
		})
	})
}

// Gather selects the entries idx along axis (torch.index_select, ONNX
// Gather with 1-D indices); indices may repeat.
func (tp *Tape) Gather(x *Var, axis int, idx []int) *Var {
	shape := x.Value.Shape
	axis = normAxis("Gather", axis, len(shape))
	dim := shape[axis]
	for i, j := range idx {
		if j < 0 || j >= dim {
			Failf("Gather", "index %d (position %d) out of range for axis %d of x shape %v", j, i, axis, shape)
		}
	}
	idx = slices.Clone(idx)
	outShape := slices.Clone(shape)
	outShape[axis] = len(idx)
	outer := tensor.Numel(shape[:axis])
	post := tensor.Numel(shape[axis+1:])
	in, rowOut := dim*post, len(idx)*post
	out := tp.Alloc(outShape...)
	xd, od := x.Value.Data, out.Data
	tensor.Parallel(outer, rowOut, func(lo, hi int) {
		for o := lo; o < hi; o++ {
			for k, j := range idx {
				copy(od[o*rowOut+k*post:o*rowOut+(k+1)*post], xd[o*in+j*post:o*in+(j+1)*post])
			}
		}
	})
	attrs := map[string]any{"axis": axis, "indices": idx}
	return tp.Record("Gather", attrs, out, []*Var{x}, func(o *Var) {
		gx := tp.GradOf(x)
		if gx == nil {
			return
		}
		g := o.Grad.Data
		// Repeated indices add into the same slice, so each outer block
		// stays in one goroutine.
		tensor.Parallel(outer, rowOut, func(lo, hi int) {
			for oi := lo; oi < hi; oi++ {
				for k, j := range idx {
					d := gx.Data[oi*in+j*post : oi*in+(j+1)*post]
					s := g[oi*rowOut+k*post : oi*rowOut+(k+1)*post]
					for i := range d {
						d[i] += s[i]
					}
				}
			}
		})
	})
}

// TakeAlongAxis picks, for every index o over the axes before axis, its
// own k entries idx[o*k : (o+1)*k] along axis (torch.gather with an index
// expanded over the trailing axes, e.g. MAE keeping a random subset of each
// image's patches: x [B,T,D], idx B*k ids -> [B,k,D]).
func (tp *Tape) TakeAlongAxis(x *Var, axis int, idx []int, k int) *Var {
	shape := x.Value.Shape
	axis = normAxis("TakeAlongAxis", axis, len(shape))
	outer, dim, post := axisSplit(shape, axis)
	if k < 0 || len(idx) != outer*k {
		Failf("TakeAlongAxis", "%d indices for x shape %v, axis %d, k = %d: need %d", len(idx), shape, axis, k, outer*k)
	}
	for i, j := range idx {
		if j < 0 || j >= dim {
			Failf("TakeAlongAxis", "index %d (position %d) out of range for axis %d of x shape %v", j, i, axis, shape)
		}
	}
	idx = slices.Clone(idx)
	outShape := slices.Clone(shape)
	outShape[axis] = k
	in, rowOut := dim*post, k*post
	out := tp.Alloc(outShape...)
	xd, od := x.Value.Data, out.Data
	tensor.Parallel(outer, rowOut, func(lo, hi int) {
		for o := lo; o < hi; o++ {
			for q, j := range idx[o*k : (o+1)*k] {
				copy(od[o*rowOut+q*post:o*rowOut+(q+1)*post], xd[o*in+j*post:o*in+(j+1)*post])
			}
		}
	})
	attrs := map[string]any{"axis": axis, "indices": idx, "k": k}
	return tp.Record("TakeAlongAxis", attrs, out, []*Var{x}, func(ov *Var) {
		gx := tp.GradOf(x)
		if gx == nil {
			return
		}
		g := ov.Grad.Data
		tensor.Parallel(outer, rowOut, func(lo, hi int) {
			for o := lo; o < hi; o++ {
				for q, j := range idx[o*k : (o+1)*k] {
					d := gx.Data[o*in+j*post : o*in+(j+1)*post]
					src := g[o*rowOut+q*post : o*rowOut+(q+1)*post]
					for i := range d {
						d[i] += src[i]
					}
				}
			}
		})
	})
}

// Detach returns x's value cut off from the graph: no gradient flows back
// through it (the stop-gradient of BYOL/SimSiam targets). It is recorded as
// an identity so export still sees the data flow.
func (tp *Tape) Detach(x *Var) *Var {
	out := &tensor.Tensor{Shape: slices.Clone(x.Value.Shape), Data: x.Value.Data}
	v := tp.Record("Detach", nil, out, []*Var{x}, nil)
	v.requiresGrad = false
	return v
}
