package autograd

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/sslzoo/sslzoo/tensor"
)

// GradCheck configures CheckGrad. Zero values pick defaults suited to float32
// kernels with O(1) inputs.
type GradCheck struct {
	Eps  float64 // central-difference step (default 1e-2)
	ATol float64 // absolute tolerance (default 2e-3)
	RTol float64 // relative tolerance (default 2e-2)
	// MaxProbes caps how many elements per input are perturbed (default 48);
	// larger inputs are sampled at fixed pseudo-random positions.
	MaxProbes int
	Seed      uint64
}

// CheckGrad verifies the analytic gradients of f against central finite
// differences. f builds its output from vars wrapping inputs; the scalar
// probed is sum(r * out) for a fixed random r, accumulated in float64, so
// every output element and every input element contributes. Inputs are
// perturbed in place and restored.
func CheckGrad(f func(tp *Tape, in []*Var) *Var, inputs []*tensor.Tensor, opt GradCheck) error {
	if opt.Eps == 0 {
		opt.Eps = 1e-2
	}
	if opt.ATol == 0 {
		opt.ATol = 2e-3
	}
	if opt.RTol == 0 {
		opt.RTol = 2e-2
	}
	if opt.MaxProbes == 0 {
		opt.MaxProbes = 48
	}
	rng := rand.New(rand.NewPCG(opt.Seed, 7))

	tp := NewTape()
	vars := make([]*Var, len(inputs))
	for i, t := range inputs {
		vars[i] = NewParam(fmt.Sprintf("input%d", i), t)
	}
	out := f(tp, vars)
	r := tensor.New(out.Value.Shape...)
	for i := range r.Data {
		r.Data[i] = float32(rng.NormFloat64())
	}
	if err := tp.BackwardWith(out, r); err != nil {
		return err
	}

	probe := func() float64 {
		tp := NewTape()
		ins := make([]*Var, len(inputs))
		for i, t := range inputs {
			ins[i] = NewParam(fmt.Sprintf("input%d", i), t)
		}
		o := f(tp, ins)
		s := 0.0
		for i, v := range o.Value.Data {
			s += float64(v) * float64(r.Data[i])
		}
		tp.Reset()
		return s
	}

	for i, t := range inputs {
		grad := vars[i].Grad
		if grad == nil {
			return fmt.Errorf("input %d: no gradient reached it", i)
		}
		idx := make([]int, 0, opt.MaxProbes)
		if t.Numel() <= opt.MaxProbes {
			for j := range t.Numel() {
				idx = append(idx, j)
			}
		} else {
			for range opt.MaxProbes {
				idx = append(idx, rng.IntN(t.Numel()))
			}
		}
		for _, j := range idx {
			orig := t.Data[j]
			t.Data[j] = orig + float32(opt.Eps)
			up := probe()
			t.Data[j] = orig - float32(opt.Eps)
			down := probe()
			t.Data[j] = orig
			// The actual step is what float32 could represent.
			step := float64(orig+float32(opt.Eps)) - float64(orig-float32(opt.Eps))
			numeric := (up - down) / step
			analytic := float64(grad.Data[j])
			if math.Abs(numeric-analytic) > opt.ATol+opt.RTol*math.Abs(numeric) || math.IsNaN(analytic) {
				return fmt.Errorf("input %d (shape %v) element %d: analytic gradient %.6g, numeric %.6g", i, t.Shape, j, analytic, numeric)
			}
		}
	}
	return nil
}
