package autograd

import (
	"math/rand/v2"

	"github.com/sslzoo/sslzoo/tensor"
)

// Dropout zeroes each element with probability p and scales the survivors
// by 1/(1-p) (inverted dropout), so evaluation needs no rescaling. It is
// the identity, returning x itself, when !training or p == 0: nothing is
// recorded, so export never sees it. The mask depends only on rng's state,
// drawn sequentially, so a seeded rng reproduces a run exactly.
func (tp *Tape) Dropout(x *Var, p float32, training bool, rng *rand.Rand) *Var {
	if !(p >= 0 && p <= 1) {
		Failf("Dropout", "p = %g: need 0 <= p <= 1", p)
	}
	if !training || p == 0 {
		return x
	}
	if rng == nil {
		Failf("Dropout", "training with p = %g needs an rng", p)
	}
	n := x.Value.Numel()
	// mask holds 0 or 1/(1-p) per element; p == 1 drops everything.
	mask := tp.Alloc(n)
	scale := float32(0)
	if p < 1 {
		scale = 1 / (1 - p)
	}
	// Drop when a uniform 32-bit draw falls below p*2^32; each 64-bit
	// draw serves two elements.
	thr := uint64(float64(p) * (1 << 32))
	md := mask.Data
	for i := 0; i < n; i += 2 {
		u := rng.Uint64()
		md[i] = scale
		if u&0xffffffff < thr {
			md[i] = 0
		}
		if i+1 < n {
			md[i+1] = scale
			if u>>32 < thr {
				md[i+1] = 0
			}
		}
	}
	out := tp.Alloc(x.Value.Shape...)
	xd, od := x.Value.Data, out.Data
	tensor.Parallel(n, 1, func(lo, hi int) {
		o, xs, m := od[lo:hi], xd[lo:hi], md[lo:hi]
		for i := range o {
			o[i] = xs[i] * m[i]
		}
	})
	return tp.Record("Dropout", map[string]any{"p": p, "training": true}, out, []*Var{x}, func(ov *Var) {
		gx := tp.GradOf(x)
		if gx == nil {
			return
		}
		g := ov.Grad.Data
		tensor.Parallel(n, 1, func(lo, hi int) {
			d, gs, m := gx.Data[lo:hi], g[lo:hi], md[lo:hi]
			for i := range d {
				d[i] += gs[i] * m[i]
			}
		})
	})
}
