package autograd

import (
	"math"
	"slices"

	"github.com/sslzoo/sslzoo/tensor"
)

// IgnoreIndex is the target value CrossEntropy skips, as PyTorch's default
// ignore_index (e.g. unmasked tokens in masked language modelling).
const IgnoreIndex = -100

// logSumExpRow returns the row's maximum m and log Σ exp(x - m), kept
// apart so that x - m - l stays exact for large logits.
func logSumExpRow(x []float32) (m, l float32) {
	m = float32(math.Inf(-1))
	for _, v := range x {
		if v > m {
			m = v
		}
	}
	if math.IsInf(float64(m), 0) {
		return m, 0
	}
	var s float64
	for _, v := range x {
		s += float64(exp32(v - m))
	}
	return m, float32(math.Log(s))
}

// CrossEntropy is the mean over rows whose target is not IgnoreIndex of
// -log_softmax(logits)[row, target], like torch.nn.functional.cross_entropy
// with reduction="mean". logits is [N, C]; targets has N entries. With
// every row ignored the result is NaN, as in PyTorch.
func (tp *Tape) CrossEntropy(logits *Var, targets []int) *Var {
	shape := logits.Value.Shape
	if len(shape) != 2 {
		Failf("CrossEntropy", "logits shape %v: need [N, C]", shape)
	}
	n, c := shape[0], shape[1]
	if len(targets) != n {
		Failf("CrossEntropy", "%d targets for logits shape %v", len(targets), shape)
	}
	count := 0
	for i, t := range targets {
		if t == IgnoreIndex {
			continue
		}
		if t < 0 || t >= c {
			Failf("CrossEntropy", "target %d (row %d) out of range for %d classes", t, i, c)
		}
		count++
	}
	targets = slices.Clone(targets)
	xd := logits.Value.Data
	// lse keeps each row's max and log Σ exp for the backward pass.
	lse := tp.Alloc(2 * n)
	tensor.Parallel(n, 2*c, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			if targets[r] != IgnoreIndex {
				lse.Data[2*r], lse.Data[2*r+1] = logSumExpRow(xd[r*c : (r+1)*c])
			}
		}
	})
	var total float64
	for r, t := range targets {
		if t != IgnoreIndex {
			total += float64(lse.Data[2*r+1]) - float64(xd[r*c+t]-lse.Data[2*r])
		}
	}
	out := tp.allocScalar()
	out.Data[0] = float32(total / float64(count))
	attrs := map[string]any{"ignore_index": IgnoreIndex, "reduction": "mean"}
	return tp.Record("CrossEntropy", attrs, out, []*Var{logits}, func(o *Var) {
		gx := tp.GradOf(logits)
		if gx == nil || count == 0 {
			return
		}
		scale := o.Grad.Data[0] / float32(count)
		tensor.Parallel(n, 3*c, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				t := targets[r]
				if t == IgnoreIndex {
					continue
				}
				xr, gr := xd[r*c:(r+1)*c], gx.Data[r*c:(r+1)*c]
				m, l := lse.Data[2*r], lse.Data[2*r+1]
				for i, v := range xr {
					gr[i] += scale * exp32((v-m)-l)
				}
				gr[t] -= scale
			}
		})
	})
}

// CrossEntropySoft is the mean over rows of -Σ probs * log_softmax(logits),
// cross-entropy against soft targets (torch.nn.functional.cross_entropy
// with class-probability targets). Both inputs are [N, C]; gradients flow
// to both (SwAV's swapped prediction detaches its codes itself).
func (tp *Tape) CrossEntropySoft(logits, probs *Var) *Var {
	shape := logits.Value.Shape
	if len(shape) != 2 || !tensor.SameShape(shape, probs.Value.Shape) {
		Failf("CrossEntropySoft", "logits shape %v, probs shape %v: need equal [N, C]", shape, probs.Value.Shape)
	}
	n, c := shape[0], shape[1]
	xd, pd := logits.Value.Data, probs.Value.Data
	lse := tp.Alloc(2 * n)
	rowLoss := tp.Scratch(n)
	tensor.Parallel(n, 3*c, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, pr := xd[r*c:(r+1)*c], pd[r*c:(r+1)*c]
			m, l := logSumExpRow(xr)
			lse.Data[2*r], lse.Data[2*r+1] = m, l
			var s float64
			for i, p := range pr {
				s += float64(p) * float64(l-(xr[i]-m))
			}
			rowLoss[r] = float32(s)
		}
	})
	out := tp.allocScalar()
	out.Data[0] = float32(sumf(rowLoss[:n]) / float64(n))
	tp.Release(rowLoss)
	return tp.Record("CrossEntropySoft", map[string]any{"reduction": "mean"}, out, []*Var{logits, probs}, func(o *Var) {
		scale := o.Grad.Data[0] / float32(n)
		gx, gp := tp.GradOf(logits), tp.GradOf(probs)
		tensor.Parallel(n, 4*c, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				xr, pr := xd[r*c:(r+1)*c], pd[r*c:(r+1)*c]
				m, l := lse.Data[2*r], lse.Data[2*r+1]
				if gx != nil {
					// d/dx = softmax(x)*Σp - p
					ps := float32(sumf(pr))
					gr := gx.Data[r*c : (r+1)*c]
					for i, v := range xr {
						gr[i] += scale * (exp32((v-m)-l)*ps - pr[i])
					}
				}
				if gp != nil {
					// d/dp = -log_softmax(x)
					gr := gp.Data[r*c : (r+1)*c]
					for i, v := range xr {
						gr[i] += scale * (l - (v - m))
					}
				}
			}
		})
	})
}
