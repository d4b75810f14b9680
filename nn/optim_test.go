package nn

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/weights"
)

type optimCase struct {
	Kind        string
	LR          float32
	Momentum    float32
	Dampening   float32
	WeightDecay float32 `json:"weight_decay"`
	Nesterov    bool
	Betas       []float32
	Eps         float32
	Eta         float32
	Clip        bool
}

type optimGolden struct {
	f       *weights.File
	cases   map[string]optimCase
	steps   int
	lrScale []float32
	names   []string
}

func loadOptimGolden(t *testing.T) *optimGolden {
	t.Helper()
	f, err := weights.Read("testdata/optim.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	g := &optimGolden{f: f}
	for key, dst := range map[string]any{"cases": &g.cases, "lr_scale": &g.lrScale, "params": &g.names} {
		if err := json.Unmarshal([]byte(f.Metadata[key]), dst); err != nil {
			t.Fatalf("metadata %s: %v", key, err)
		}
	}
	g.steps, _ = strconv.Atoi(f.Metadata["steps"])
	if len(g.cases) == 0 || g.steps == 0 {
		t.Fatal("empty optimizer fixture")
	}
	return g
}

func (g *optimGolden) get(t *testing.T, name string) *tensor.Tensor {
	t.Helper()
	v, err := g.f.Float32(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// params builds fresh parameters from the fixture's initial values.
func (g *optimGolden) params(t *testing.T) []Param {
	ps := make([]Param, len(g.names))
	for i, n := range g.names {
		ps[i] = Param{n, autograd.NewParam(n, g.get(t, "init."+n))}
	}
	return ps
}

func (g *optimGolden) setGrads(t *testing.T, ps []Param, step int) {
	for _, p := range ps {
		p.Var.Grad = g.get(t, fmt.Sprintf("grad%d.%s", step, p.Name))
	}
}

func newOptim(c optimCase, ps []Param) Optimizer {
	switch c.Kind {
	case "sgd":
		return NewSGD(ps, SGDConfig{LR: c.LR, Momentum: c.Momentum, Dampening: c.Dampening, WeightDecay: c.WeightDecay, Nesterov: c.Nesterov})
	case "adamw":
		return NewAdamW(ps, AdamWConfig{LR: c.LR, Beta1: c.Betas[0], Beta2: c.Betas[1], Eps: c.Eps, WeightDecay: c.WeightDecay})
	case "lars":
		return NewLARS(ps, LARSConfig{LR: c.LR, Momentum: c.Momentum, WeightDecay: c.WeightDecay, TrustCoefficient: c.Eta, Nesterov: c.Nesterov, ClipRatio: c.Clip})
	}
	panic("unknown optimizer kind " + c.Kind)
}

// maxRelDiff is max |a-b| / (1+|b|).
func maxRelDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i]))/(1+math.Abs(float64(b[i]))))
	}
	return d
}

// TestOptimizersMatchPyTorch runs SGD and AdamW against torch.optim and LARS
// against an explicit reference of the published formula, from the same
// parameters and gradients, with the learning rate changed every step.
func TestOptimizersMatchPyTorch(t *testing.T) {
	g := loadOptimGolden(t)
	for name, c := range g.cases {
		t.Run(name, func(t *testing.T) {
			ps := g.params(t)
			opt := newOptim(c, ps)
			for step := range g.steps {
				g.setGrads(t, ps, step)
				opt.SetLR(c.LR * g.lrScale[step])
				if opt.LR() != c.LR*g.lrScale[step] {
					t.Fatalf("LR() = %g after SetLR", opt.LR())
				}
				opt.Step()
				for _, p := range ps {
					want := g.get(t, fmt.Sprintf("%s.after%d.%s", name, step, p.Name))
					if d := maxRelDiff(p.Var.Value.Data, want.Data); d > 3e-7 {
						t.Errorf("step %d %s: max rel diff %.3g from PyTorch", step, p.Name, d)
					}
				}
			}
		})
	}
}

// TestOptimizerStateResume checks that saving and restoring optimizer state
// mid-run continues bit for bit.
func TestOptimizerStateResume(t *testing.T) {
	g := loadOptimGolden(t)
	for name, c := range g.cases {
		t.Run(name, func(t *testing.T) {
			full := g.params(t)
			optFull := newOptim(c, full)
			for step := range g.steps {
				g.setGrads(t, full, step)
				optFull.SetLR(c.LR * g.lrScale[step])
				optFull.Step()
			}

			half := g.params(t)
			opt1 := newOptim(c, half)
			g.setGrads(t, half, 0)
			opt1.SetLR(c.LR * g.lrScale[0])
			opt1.Step()
			saved := opt1.(OptimizerState).StateTensors()

			// A fresh optimizer over copies of the parameters, as after a
			// process restart.
			resumed := make([]Param, len(half))
			for i, p := range half {
				resumed[i] = Param{p.Name, autograd.NewParam(p.Name, p.Var.Value.Clone())}
			}
			opt2 := newOptim(c, resumed)
			opt2.SetLR(123)
			if err := opt2.(OptimizerState).LoadStateTensors(saved); err != nil {
				t.Fatal(err)
			}
			if opt2.LR() != opt1.LR() {
				t.Errorf("LR after load %g, saved %g", opt2.LR(), opt1.LR())
			}
			for step := 1; step < g.steps; step++ {
				g.setGrads(t, resumed, step)
				opt2.SetLR(c.LR * g.lrScale[step])
				opt2.Step()
			}
			for i := range full {
				if sameBitsF32(full[i].Var.Value.Data, resumed[i].Var.Value.Data) >= 0 {
					t.Errorf("%s differs after resume", full[i].Name)
				}
			}
		})
	}
}

func sameBitsF32(a, b []float32) int {
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}

func TestOptimizerStateErrors(t *testing.T) {
	p := Param{"w", autograd.NewParam("w", tensor.New(2, 2))}
	p.Var.Grad = tensor.FromSlice([]float32{1, 2, 3, 4}, 2, 2)
	o := NewAdamW([]Param{p}, AdamWConfig{LR: 0.1})
	o.Step()
	st := o.StateTensors()
	for _, want := range []string{"optim.lr", "optim.w.exp_avg", "optim.w.exp_avg_sq", "optim.w.step"} {
		if st[want] == nil {
			t.Errorf("state lacks %s (has %v)", want, keys(st))
		}
	}
	bad := map[string]*weights.Tensor{}
	for k, v := range st {
		bad[k] = v
	}
	bad["optim.w.exp_avg"] = weights.FromFloat32(tensor.New(3))
	bad["optim.v.momentum"] = weights.FromFloat32(tensor.New(1))
	err := NewAdamW([]Param{p}, AdamWConfig{LR: 0.1}).LoadStateTensors(bad)
	if err == nil {
		t.Fatal("bad state accepted")
	}
	for _, w := range []string{"optim.w.exp_avg: shape [3]", "unexpected optim.v.momentum"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}

func TestSGDSkipsParamsWithoutGrad(t *testing.T) {
	a := Param{"a", autograd.NewParam("a", tensor.FromSlice([]float32{1, 2}, 2))}
	b := Param{"b", autograd.NewParam("b", tensor.FromSlice([]float32{3}, 1))}
	a.Var.Grad = tensor.FromSlice([]float32{1, -1}, 2)
	o := NewSGD([]Param{a, b}, SGDConfig{LR: 0.5, WeightDecay: 0.1})
	o.Step()
	// a: 1 - 0.5*(1+0.1*1) = 0.45, 2 - 0.5*(-1+0.2) = 2.4; b untouched.
	if d := maxRelDiff(a.Var.Value.Data, []float32{0.45, 2.4}); d > 1e-7 || b.Var.Value.Data[0] != 3 {
		t.Errorf("a=%v b=%v", a.Var.Value.Data, b.Var.Value.Data)
	}
	o.ZeroGrad()
	if a.Var.Grad.Data[0] != 0 || a.Var.Grad.Data[1] != 0 {
		t.Error("ZeroGrad left gradients")
	}
}

func TestLARSExclusion(t *testing.T) {
	w := autograd.NewParam("fc.weight", tensor.New(2, 2))
	ps := []Param{{"fc.weight", w}, {"fc.bias", autograd.NewParam("fc.bias", tensor.New(2))},
		{"bn.weight", autograd.NewParam("bn.weight", tensor.New(4))}}
	for _, c := range []struct {
		i    int
		want bool
	}{{0, false}, {1, true}, {2, true}} {
		if got := ExcludeBiasAndNorm(ps[c.i]); got != c.want {
			t.Errorf("%s excluded = %v", ps[c.i].Name, got)
		}
	}
}

// TestClipGradNorm compares with torch.nn.utils.clip_grad_norm_.
func TestClipGradNorm(t *testing.T) {
	g := loadOptimGolden(t)
	for _, c := range []struct {
		name string
		max  float64
	}{{"clip", 1.5}, {"noclip", 1e3}} {
		ps := g.params(t)
		g.setGrads(t, ps, 0)
		for _, p := range ps {
			p.Var.Grad = p.Var.Grad.Clone()
		}
		norm := ClipGradNorm(ps, c.max)
		want := g.get(t, c.name+".norm").Data[0]
		if math.Abs(norm-float64(want)) > 1e-5*float64(want) {
			t.Errorf("%s: norm %g, torch %g", c.name, norm, want)
		}
		for _, p := range ps {
			if d := maxRelDiff(p.Var.Grad.Data, g.get(t, c.name+".grad."+p.Name).Data); d > 1e-6 {
				t.Errorf("%s: %s grad off by %g", c.name, p.Name, d)
			}
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
