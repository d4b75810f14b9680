package autograd

import (
	"math/rand/v2"

	"github.com/sslzoo/sslzoo/tensor"
)

// dropoutChunk is how many elements share one random stream.
const dropoutChunk = 1 << 14

// Dropout zeroes each element with probability p and scales the survivors
// by 1/(1-p) (inverted dropout), so evaluation needs no rescaling. It is
// the identity, returning x itself, when !training or p == 0: nothing is
// recorded, so export never sees it. The mask depends only on rng's state
// (and x's size), so a seeded rng reproduces a run exactly on any number
// of cores.
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
	out := tp.Alloc(x.Value.Shape...)
	scale := float32(0)
	if p < 1 {
		scale = 1 / (1 - p)
	}
	// Fixed-size chunks, each with its own PCG stream seeded from rng in
	// order: the mask is a function of rng's state alone (not of the core
	// count), yet chunks fill in parallel.
	chunks := (n + dropoutChunk - 1) / dropoutChunk
	seeds := make([]uint64, 2*chunks)
	for i := range seeds {
		seeds[i] = rng.Uint64()
	}
	// Drop when a uniform 32-bit draw falls below p*2^32; each 64-bit
	// draw serves two elements.
	thr := uint64(float64(p) * (1 << 32))
	xd, od, md := x.Value.Data, out.Data, mask.Data
	tensor.Parallel(chunks, dropoutChunk, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			src := rand.NewPCG(seeds[2*c], seeds[2*c+1])
			m := md[c*dropoutChunk : min((c+1)*dropoutChunk, n)]
			for i := 0; i < len(m); i += 2 {
				u := src.Uint64()
				m[i] = scale
				if u&0xffffffff < thr {
					m[i] = 0
				}
				if i+1 < len(m) {
					m[i+1] = scale
					if u>>32 < thr {
						m[i+1] = 0
					}
				}
			}
			o, xs := od[c*dropoutChunk:c*dropoutChunk+len(m)], xd[c*dropoutChunk:c*dropoutChunk+len(m)]
			for i := range o {
				o[i] = xs[i] * m[i]
			}
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
