package autograd

import (
	"math"

	"github.com/sslzoo/sslzoo/tensor"
)

// BatchNorm is torch.nn.functional.batch_norm over axis 1 of x ([N,C] or
// [N,C,H,W]; any [N,C,...] works): y = (x-mean)/sqrt(var+eps)*weight + bias.
//
// In training mode it normalises with the batch statistics (biased
// variance) and, when runningMean/runningVar are given, updates them in
// place as PyTorch does: running = (1-momentum)*running + momentum*batch,
// with the unbiased variance. In eval mode it normalises with the running
// statistics; with none given (track_running_stats=False) it uses the
// batch statistics in both modes. weight and bias may be nil (affine=False).
//
// The kernels are Go loops spread over channels with tensor.Parallel. The
// op is memory-bound; measured on [64,64,32,32] fwd+bwd (2 cores), oneDNN
// 2.6.3's batch norm on our NCHW layout (ncsp_bnorm) took 155-178 ms
// against about 30 ms for these loops, and its AVX-512 kernel needs the
// blocked nChw16c layout (35-38 ms before the four reorders it would cost),
// so Go it is.
//
// Recorded attributes: epsilon, momentum, training_mode (whether batch
// statistics were used), has_weight, has_bias, and inputs, the role of each
// recorded input in order (x, then "scale", "B", "mean", "var" as present;
// the running statistics are recorded as Const inputs so that export can
// find them).
func (tp *Tape) BatchNorm(x, weight, bias *Var, runningMean, runningVar *tensor.Tensor, training bool, momentum, eps float32) *Var {
	s := x.Value.Shape
	if len(s) < 2 {
		Failf("BatchNorm", "x shape %v: need [N,C] or [N,C,H,W]", s)
	}
	n, c := s[0], s[1]
	spatial := 1
	for _, d := range s[2:] {
		spatial *= d
	}
	m := n * spatial // values per channel
	for _, p := range []struct {
		name string
		v    *tensor.Tensor
	}{{"weight", varValue(weight)}, {"bias", varValue(bias)}, {"running_mean", runningMean}, {"running_var", runningVar}} {
		if p.v != nil && (len(p.v.Shape) != 1 || p.v.Shape[0] != c) {
			Failf("BatchNorm", "%s shape %v for x shape %v: need [%d]", p.name, p.v.Shape, s, c)
		}
	}
	if (runningMean == nil) != (runningVar == nil) {
		Failf("BatchNorm", "give both running_mean and running_var, or neither")
	}
	batchStats := training || runningMean == nil
	if batchStats && m < 2 && training {
		Failf("BatchNorm", "x shape %v: training needs more than 1 value per channel", s)
	}

	xd := x.Value.Data
	out := tp.Alloc(s...)
	od := out.Data
	// stats keeps each channel's mean and 1/std for the backward pass.
	stats := tp.Alloc(2 * c)
	mean, rstd := stats.Data[:c], stats.Data[c:]
	var wd, bd []float32
	if weight != nil {
		wd = weight.Value.Data
	}
	if bias != nil {
		bd = bias.Value.Data
	}
	// channel calls f with channel ch's contiguous runs in x (and the same
	// offsets in any other [N,C,...] buffer).
	channel := func(ch int, f func(off int)) {
		for i := 0; i < n; i++ {
			f((i*c + ch) * spatial)
		}
	}
	tensor.Parallel(c, 3*m, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			var mu, v float64
			if batchStats {
				// Two passes (mean, then squared deviations), each summed
				// in float32 within a run and float64 across runs: exact
				// enough at any activation scale, unlike a one-pass sum of
				// squares, and fast (see bnSum).
				var sum float64
				channel(ch, func(off int) { sum += float64(bnSum(xd[off : off+spatial])) })
				mu = sum / float64(m)
				mu32 := float32(mu)
				channel(ch, func(off int) { v += float64(bnSqDev(xd[off:off+spatial], mu32)) })
				v /= float64(m)
				if training && runningMean != nil {
					mom := float64(momentum)
					runningMean.Data[ch] = float32((1-mom)*float64(runningMean.Data[ch]) + mom*mu)
					unbiased := v * float64(m) / float64(m-1)
					runningVar.Data[ch] = float32((1-mom)*float64(runningVar.Data[ch]) + mom*unbiased)
				}
			} else {
				mu, v = float64(runningMean.Data[ch]), float64(runningVar.Data[ch])
			}
			r := 1 / math.Sqrt(v+float64(eps))
			mean[ch], rstd[ch] = float32(mu), float32(r)
			// y = x*scale + shift folds the affine into one multiply-add.
			scale, shift := r, -mu*r
			if wd != nil {
				scale *= float64(wd[ch])
				shift *= float64(wd[ch])
			}
			if bd != nil {
				shift += float64(bd[ch])
			}
			sc, sh := float32(scale), float32(shift)
			channel(ch, func(off int) {
				o := od[off : off+spatial]
				for i, e := range xd[off : off+spatial] {
					o[i] = e*sc + sh
				}
			})
		}
	})

	inputs := []*Var{x}
	roles := []string{"X"}
	if weight != nil {
		inputs, roles = append(inputs, weight), append(roles, "scale")
	}
	if bias != nil {
		inputs, roles = append(inputs, bias), append(roles, "B")
	}
	if runningMean != nil {
		inputs = append(inputs, Const(runningMean), Const(runningVar))
		roles = append(roles, "mean", "var")
	}
	attrs := map[string]any{
		"epsilon":       eps,
		"momentum":      momentum,
		"training_mode": batchStats,
		"has_weight":    weight != nil,
		"has_bias":      bias != nil,
		"inputs":        roles,
	}
	return tp.Record("BatchNorm", attrs, out, inputs, func(o *Var) {
		dy := o.Grad.Data
		gx := tp.GradOf(x)
		var gw, gb *tensor.Tensor
		if weight != nil {
			gw = tp.GradOf(weight)
		}
		if bias != nil {
			gb = tp.GradOf(bias)
		}
		tensor.Parallel(c, 3*m, func(lo, hi int) {
			for ch := lo; ch < hi; ch++ {
				mu, r := mean[ch], rstd[ch]
				// sum(dy) and sum(dy * xhat) over the channel.
				var sdy, sdyx float64
				channel(ch, func(off int) {
					a, b := bnDots(dy[off:off+spatial], xd[off:off+spatial], mu)
					sdy += float64(a)
					sdyx += float64(b)
				})
				sdyx *= float64(r)
				if gb != nil {
					gb.Data[ch] += float32(sdy)
				}
				if gw != nil {
					gw.Data[ch] += float32(sdyx)
				}
				if gx == nil {
					continue
				}
				w := float32(1)
				if wd != nil {
					w = wd[ch]
				}
				gd := gx.Data
				if !batchStats {
					// Running statistics are constants: a per-channel scale.
					k := w * r
					channel(ch, func(off int) {
						d := gd[off : off+spatial]
						for i, g := range dy[off : off+spatial] {
							d[i] += g * k
						}
					})
					continue
				}
				// dx = w*r/m * (m*dy - sum(dy) - xhat*sum(dy*xhat))
				k := w * r
				meanDy := float32(sdy / float64(m))
				c2 := float32(sdyx/float64(m)) * r // multiplies (x-mu)
				channel(ch, func(off int) {
					d := gd[off : off+spatial]
					xs := xd[off : off+spatial]
					for i, g := range dy[off : off+spatial] {
						d[i] += k * (g - meanDy - (xs[i]-mu)*c2)
					}
				})
			}
		})
	})
}

func varValue(v *Var) *tensor.Tensor {
	if v == nil {
		return nil
	}
	return v.Value
}

// The channel sums below keep four independent accumulators: a single
// running sum is bound by the add latency (one element per 4 cycles),
// which made the statistics pass the slowest part of the op.

// bnSum returns the sum of x.
func bnSum(x []float32) float32 {
	var a0, a1, a2, a3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		a0 += x[i]
		a1 += x[i+1]
		a2 += x[i+2]
		a3 += x[i+3]
	}
	for ; i < len(x); i++ {
		a0 += x[i]
	}
	return (a0 + a1) + (a2 + a3)
}

// bnSqDev returns the sum of (x-mu)^2.
func bnSqDev(x []float32, mu float32) float32 {
	var a0, a1, a2, a3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		d0, d1, d2, d3 := x[i]-mu, x[i+1]-mu, x[i+2]-mu, x[i+3]-mu
		a0 += d0 * d0
		a1 += d1 * d1
		a2 += d2 * d2
		a3 += d3 * d3
	}
	for ; i < len(x); i++ {
		d := x[i] - mu
		a0 += d * d
	}
	return (a0 + a1) + (a2 + a3)
}

// bnDots returns sum(g) and sum(g*(x-mu)).
func bnDots(g, x []float32, mu float32) (sg, sgx float32) {
	x = x[:len(g)]
	var a0, a1, b0, b1 float32
	i := 0
	for ; i+2 <= len(g); i += 2 {
		a0 += g[i]
		a1 += g[i+1]
		b0 += g[i] * (x[i] - mu)
		b1 += g[i+1] * (x[i+1] - mu)
	}
	for ; i < len(g); i++ {
		a0 += g[i]
		b0 += g[i] * (x[i] - mu)
	}
	return a0 + a1, b0 + b1
}
