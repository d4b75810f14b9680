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
// The kernels are tensor.BN* (vectorised C with cgo, Go loops without),
// spread over channels with tensor.Parallel. The op is memory-bound;
// measured on [64,64,32,32] fwd+bwd (2 cores), oneDNN 2.6.3's batch norm on
// our NCHW layout (ncsp_bnorm) took 155-178 ms against about 30 ms for the
// Go loops, and its AVX-512 kernel needs the blocked nChw16c layout (35-38
// ms before the four reorders it would cost), so we keep our own.
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
	// Per-channel scratch: batch statistics in float64, then the folded
	// affine y = x*scale + shift.
	mv := make([]float64, 2*c)
	mu64, var64 := mv[:c], mv[c:]
	aff := tp.Scratch(2 * c)
	defer tp.Release(aff)
	scale, shift := aff[:c], aff[c:]
	// Synchronised across replicas, the statistics are the global batch's:
	// each replica's own first, then combined (syncStats) before any
	// output is written. count is the number of values per channel they
	// cover.
	crossSum := tp.crossSum // the backward pass sums over the same replicas
	sync := training && crossSum != nil
	count := float64(m)
	if sync {
		tensor.Parallel(c, 3*m, func(lo, hi int) { tensor.BNStats(xd, n, c, spatial, lo, hi, mu64, var64) })
		count = syncStats(crossSum, m, mu64, var64)
	}
	tensor.Parallel(c, 3*m, func(lo, hi int) {
		// With running statistics there is one pass over x: no reason to
		// go channel by channel.
		step := hi - lo
		if batchStats && !sync {
			step = bnStep(m, hi-lo)
		}
		for c0 := lo; c0 < hi; c0 += step {
			c1 := min(c0+step, hi)
			if batchStats && !sync {
				// Two passes (mean, then squared deviations): exact
				// enough at any activation scale, unlike a one-pass sum
				// of squares.
				tensor.BNStats(xd, n, c, spatial, c0, c1, mu64, var64)
			}
			for ch := c0; ch < c1; ch++ {
				mu, v := mu64[ch], var64[ch]
				if batchStats {
					if training && runningMean != nil {
						mom := float64(momentum)
						runningMean.Data[ch] = float32((1-mom)*float64(runningMean.Data[ch]) + mom*mu)
						unbiased := v * count / (count - 1)
						runningVar.Data[ch] = float32((1-mom)*float64(runningVar.Data[ch]) + mom*unbiased)
					}
				} else {
					mu, v = float64(runningMean.Data[ch]), float64(runningVar.Data[ch])
				}
				r := 1 / math.Sqrt(v+float64(eps))
				mean[ch], rstd[ch] = float32(mu), float32(r)
				sc, sh := r, -mu*r
				if wd != nil {
					sc *= float64(wd[ch])
					sh *= float64(wd[ch])
				}
				if bd != nil {
					sh += float64(bd[ch])
				}
				scale[ch], shift[ch] = float32(sc), float32(sh)
			}
			tensor.BNApply(od, xd, n, c, spatial, c0, c1, scale, shift)
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
		// x's gradient is usually fresh (a conv output feeds only this
		// op): then it is written, saving a zeroing pass and a read.
		gx, fresh := tp.GradForWrite(x)
		var gw, gb *tensor.Tensor
		if weight != nil {
			gw = tp.GradOf(weight)
		}
		if bias != nil {
			gb = tp.GradOf(bias)
		}
		needDots := batchStats || gw != nil || gb != nil
		dots := make([]float64, 2*c)
		sdy, sdyx := dots[:c], dots[c:]
		coef := tp.Scratch(3 * c)
		defer tp.Release(coef)
		kc, meanDy, c2 := coef[:c], coef[c:2*c], coef[2*c:]
		if !batchStats {
			// Running statistics are constants: a per-channel scale.
			c2 = nil
		}
		// Synchronised, the input gradient needs the sums over the global
		// batch (gdots); the weight and bias gradients keep this replica's
		// own, since the replicas' parameter gradients are averaged later.
		var gdots []float64
		if sync {
			tensor.Parallel(c, 3*m, func(lo, hi int) { tensor.BNDots(dy, xd, n, c, spatial, lo, hi, mean, sdy, sdyx) })
			gdots = sumOverReplicas(crossSum, dots)
		}
		tensor.Parallel(c, 3*m, func(lo, hi int) {
			step := hi - lo
			if !sync {
				step = bnStep(m, hi-lo)
			}
			for c0 := lo; c0 < hi; c0 += step {
				c1 := min(c0+step, hi)
				if needDots && !sync {
					// sum(dy) and sum(dy*(x-mean)) per channel.
					tensor.BNDots(dy, xd, n, c, spatial, c0, c1, mean, sdy, sdyx)
				}
				for ch := c0; ch < c1; ch++ {
					r := rstd[ch]
					sx := sdyx[ch] * float64(r) // sum(dy * xhat)
					if gb != nil {
						gb.Data[ch] += float32(sdy[ch])
					}
					if gw != nil {
						gw.Data[ch] += float32(sx)
					}
					w := float32(1)
					if wd != nil {
						w = wd[ch]
					}
					// dx = w*r/m * (m*dy - sum(dy) - xhat*sum(dy*xhat))
					kc[ch] = w * r
					if batchStats {
						s, sxg := sdy[ch], sx
						if sync {
							s, sxg = gdots[ch], gdots[c+ch]*float64(r)
						}
						meanDy[ch] = float32(s / count)
						c2[ch] = float32(sxg/count) * r // multiplies (x-mu)
					}
				}
				if gx != nil {
					tensor.BNInputGrad(gx.Data, dy, xd, n, c, spatial, c0, c1, kc, meanDy, c2, mean, !fresh)
				}
			}
		})
	})
}

// syncStats turns one replica's per-channel batch mean and (biased)
// variance over m values into the global batch's, in place, and returns the
// global count. Two sums over the replicas, as the two-pass statistics
// here: the means first, then each replica's squared deviations from the
// global mean (m*(var + (mean-global)^2)), which stays exact at any
// activation scale, unlike a sum of squares.
func syncStats(sum func([]float32) error, m int, mu, v []float64) float64 {
	c := len(mu)
	buf := make([]float32, 1+c)
	buf[0] = float32(m)
	for ch := range c {
		buf[1+ch] = float32(float64(m) * mu[ch])
	}
	if err := sum(buf); err != nil {
		Failf("BatchNorm", "summing batch means over replicas: %v", err)
	}
	total := float64(buf[0])
	dev := buf[1:]
	for ch := range c {
		g := float64(buf[1+ch]) / total
		d := mu[ch] - g
		dev[ch] = float32(float64(m) * (v[ch] + d*d))
		mu[ch] = g
	}
	if err := sum(dev); err != nil {
		Failf("BatchNorm", "summing batch variances over replicas: %v", err)
	}
	for ch := range c {
		v[ch] = float64(dev[ch]) / total
	}
	return total
}

// sumOverReplicas returns the element-wise sum of x over the replicas.
func sumOverReplicas(sum func([]float32) error, x []float64) []float64 {
	buf := make([]float32, len(x))
	for i, v := range x {
		buf[i] = float32(v)
	}
	if err := sum(buf); err != nil {
		Failf("BatchNorm", "summing gradient reductions over replicas: %v", err)
	}
	out := make([]float64, len(x))
	for i, v := range buf {
		out[i] = float64(v)
	}
	return out
}

// bnFuseMin is the number of values per channel from which BatchNorm runs
// its passes channel by channel (statistics, then normalisation, while the
// channel is still in cache) instead of over a whole range of channels;
// 16384 floats (64 KiB) is where a range stops fitting in L2.
var bnFuseMin = 1 << 14

// bnStep is how many channels of a worker's range of width channels to
// process per pass when each channel has m values.
func bnStep(m, width int) int {
	if m >= bnFuseMin {
		return 1
	}
	return max(width, 1)
}

func varValue(v *Var) *tensor.Tensor {
	if v == nil {
		return nil
	}
	return v.Value
}
