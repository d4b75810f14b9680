package autograd

import (
	"slices"

	"github.com/sslzoo/sslzoo/tensor"
)

// Embedding looks up rows of weight [V, D] for ids, giving shape+[D]
// (torch.nn.functional.embedding). len(ids) must equal the product of
// shape; an id outside [0, V) is an error.
func (tp *Tape) Embedding(weight *Var, ids []int, shape []int) *Var {
	ws := weight.Value.Shape
	if len(ws) != 2 {
		Failf("Embedding", "weight shape %v: need [V, D]", ws)
	}
	v, d := ws[0], ws[1]
	if tensor.Numel(shape) != len(ids) {
		Failf("Embedding", "%d ids for shape %v", len(ids), shape)
	}
	for i, id := range ids {
		if id < 0 || id >= v {
			Failf("Embedding", "id %d (position %d) out of range for weight shape %v", id, i, ws)
		}
	}
	ids = slices.Clone(ids)
	shape = slices.Clone(shape)
	out := tp.Alloc(append(slices.Clone(shape), d)...)
	wd, od := weight.Value.Data, out.Data
	tensor.Parallel(len(ids), d, func(lo, hi int) {
		for k := lo; k < hi; k++ {
			copy(od[k*d:(k+1)*d], wd[ids[k]*d:(ids[k]+1)*d])
		}
	})
	attrs := map[string]any{"ids": ids, "shape": shape}
	return tp.Record("Embedding", attrs, out, []*Var{weight}, func(o *Var) {
		gw := tp.GradOf(weight)
		if gw == nil {
			return
		}
		g := o.Grad.Data
		// Ids repeat, so split the columns rather than the ids: no two
		// goroutines touch the same element.
		tensor.Parallel(d, len(ids), func(lo, hi int) {
			for k, id := range ids {
				dst, src := gw.Data[id*d+lo:id*d+hi], g[k*d+lo:k*d+hi]
				for i := range dst {
					dst[i] += src[i]
				}
			}
		})
	})
}
