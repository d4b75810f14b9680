package autograd

import (
	"math"

	"github.com/sslzoo/sslzoo/tensor"
)

// LayerNorm normalises x over its last axis (biased variance, eps inside
// the square root) and applies the optional affine w, b of shape [D], like
// torch.nn.functional.layer_norm(x, [D], w, b, eps).
func (tp *Tape) LayerNorm(x, w, b *Var, eps float32) *Var {
	shape := x.Value.Shape
	if len(shape) == 0 {
		Failf("LayerNorm", "x is a scalar; need at least one axis")
	}
	d := shape[len(shape)-1]
	for _, p := range []*Var{w, b} {
		if p != nil && (len(p.Value.Shape) != 1 || p.Value.Shape[0] != d) {
			Failf("LayerNorm", "weight/bias shape %v for x shape %v: need [%d]", p.Value.Shape, shape, d)
		}
	}
	rows := x.Value.Numel() / max(d, 1)
	out := tp.Alloc(shape...)
	// stats holds each row's mean and 1/std for the backward pass.
	stats := tp.Alloc(2 * rows)
	xd, od, sd := x.Value.Data, out.Data, stats.Data
	var wd, bd []float32
	inputs := []*Var{x}
	if w != nil {
		wd = w.Value.Data
		inputs = append(inputs, w)
	}
	if b != nil {
		bd = b.Value.Data
		inputs = append(inputs, b)
	}
	tensor.Parallel(rows, 4*d, func(lo, hi int) {
		if tensor.LayerNormRows(od[lo*d:hi*d], xd[lo*d:hi*d], d, wd, bd, eps, sd[2*lo:2*hi]) {
			return
		}
		for r := lo; r < hi; r++ {
			xr, or := xd[r*d:(r+1)*d], od[r*d:(r+1)*d]
			mean := sumf(xr) / float64(d)
			var v float64
			for _, e := range xr {
				t := float64(e) - mean
				v += t * t
			}
			rstd := 1 / math.Sqrt(v/float64(d)+float64(eps))
			m, rs := float32(mean), float32(rstd)
			sd[2*r], sd[2*r+1] = m, rs
			switch {
			case wd != nil && bd != nil:
				for i := range or {
					or[i] = (xr[i]-m)*rs*wd[i] + bd[i]
				}
			case wd != nil:
				for i := range or {
					or[i] = (xr[i] - m) * rs * wd[i]
				}
			case bd != nil:
				for i := range or {
					or[i] = (xr[i]-m)*rs + bd[i]
				}
			default:
				for i := range or {
					or[i] = (xr[i] - m) * rs
				}
			}
		}
	})
	attrs := map[string]any{"axis": -1, "epsilon": eps, "has_weight": w != nil, "has_bias": b != nil}
	return tp.Record("LayerNorm", attrs, out, inputs, func(o *Var) {
		g := o.Grad.Data
		var gx, gw, gb *tensor.Tensor
		gx = tp.GradOf(x)
		if w != nil {
			gw = tp.GradOf(w)
		}
		if b != nil {
			gb = tp.GradOf(b)
		}
		if gx != nil {
			tensor.Parallel(rows, 6*d, func(lo, hi int) {
				for r := lo; r < hi; r++ {
					xr, gr, gxr := xd[r*d:(r+1)*d], g[r*d:(r+1)*d], gx.Data[r*d:(r+1)*d]
					m, rs := sd[2*r], sd[2*r+1]
					// With dy = g*w and xhat = (x-m)*rs:
					// gx = rs*(dy - mean(dy) - xhat*mean(dy*xhat)).
					var s1, s2 float64
					for i, gv := range gr {
						dy := gv
						if wd != nil {
							dy *= wd[i]
						}
						s1 += float64(dy)
						s2 += float64(dy) * float64((xr[i]-m)*rs)
					}
					a, c := float32(s1/float64(d)), float32(s2/float64(d))
					for i, gv := range gr {
						dy := gv
						if wd != nil {
							dy *= wd[i]
						}
						gxr[i] += rs * (dy - a - (xr[i]-m)*rs*c)
					}
				}
			})
		}
		if gw == nil && gb == nil {
			return
		}
		// Parameter gradients sum over rows: accumulate [gw | gb] per worker.
		acc := tp.Scratch(2 * d)
		clear(acc)
		splitAccumulate(tp.pool, rows, 2*d, acc, func(lo, hi int, acc []float32) {
			aw, ab := acc[:d], acc[d:2*d]
			for r := lo; r < hi; r++ {
				xr, gr := xd[r*d:(r+1)*d], g[r*d:(r+1)*d]
				m, rs := sd[2*r], sd[2*r+1]
				for i, gv := range gr {
					aw[i] += gv * (xr[i] - m) * rs
					ab[i] += gv
				}
			}
		})
		if gw != nil {
			for i := range gw.Data {
				gw.Data[i] += acc[i]
			}
		}
		if gb != nil {
			for i := range gb.Data {
				gb.Data[i] += acc[d+i]
			}
		}
		tp.Release(acc)
	})
}

// L2Normalize divides x by its Euclidean norm along axis, clamped below at
// eps: x / max(‖x‖, eps), as torch.nn.functional.normalize(x, 2, axis, eps).
func (tp *Tape) L2Normalize(x *Var, axis int, eps float32) *Var {
	shape := x.Value.Shape
	axis = normAxis("L2Normalize", axis, len(shape))
	outer, n, inner := axisSplit(shape, axis)
	out := tp.Alloc(shape...)
	// den keeps max(‖x‖, eps) per line; a negative value marks a clamped
	// line, whose gradient is plain g/eps.
	den := tp.Alloc(outer * inner)
	xd, od, dd := x.Value.Data, out.Data, den.Data
	tensor.Parallel(outer*inner, 3*n, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			base := (r/inner)*n*inner + r%inner
			var s float64
			for k := 0; k < n; k++ {
				v := float64(xd[base+k*inner])
				s += v * v
			}
			nrm := math.Sqrt(s)
			dv := float32(nrm)
			if nrm <= float64(eps) {
				dv = eps
			}
			inv := 1 / dv
			for k := 0; k < n; k++ {
				od[base+k*inner] = xd[base+k*inner] * inv
			}
			if nrm <= float64(eps) {
				dv = -dv
			}
			dd[r] = dv
		}
	})
	attrs := map[string]any{"axis": axis, "p": 2, "eps": eps}
	return tp.Record("L2Normalize", attrs, out, []*Var{x}, func(o *Var) {
		gx := tp.GradOf(x)
		if gx == nil {
			return
		}
		g := o.Grad.Data
		tensor.Parallel(outer*inner, 4*n, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				base := (r/inner)*n*inner + r%inner
				dv := dd[r]
				if dv < 0 {
					inv := -1 / dv
					for k := 0; k < n; k++ {
						gx.Data[base+k*inner] += g[base+k*inner] * inv
					}
					continue
				}
				// gx = (g - y*Σ g*y) / ‖x‖
				var s float64
				for k := 0; k < n; k++ {
					i := base + k*inner
					s += float64(g[i]) * float64(od[i])
				}
				sf, inv := float32(s), 1/dv
				for k := 0; k < n; k++ {
					i := base + k*inner
					gx.Data[i] += (g[i] - od[i]*sf) * inv
				}
			}
		})
	})
}
