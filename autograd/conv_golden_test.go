package autograd

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/sslzoo/sslzoo/tensor"
)

// testdata/conv_golden.json comes from scripts/gen_conv_golden.py
// (PyTorch 1.13, float64 on float32 inputs). Each case is replayed through
// the Go op: the output, the gradient of sum(grad_out*output) for every
// input, and BatchNorm's updated running statistics must match within 1e-4.

type convGoldenTensor struct {
	Shape []int     `json:"shape"`
	Data  []float64 `json:"data"`
}

func (g *convGoldenTensor) tensor() *tensor.Tensor {
	t := tensor.New(g.Shape...)
	for i, v := range g.Data {
		t.Data[i] = float32(v)
	}
	return t
}

type convGoldenCase struct {
	Name              string                       `json:"name"`
	Op                string                       `json:"op"`
	Attrs             map[string]any               `json:"attrs"`
	Inputs            map[string]*convGoldenTensor `json:"inputs"`
	GradOut           convGoldenTensor             `json:"grad_out"`
	Output            convGoldenTensor             `json:"output"`
	Grads             map[string]*convGoldenTensor `json:"grads"`
	RunningMeanBefore *convGoldenTensor            `json:"running_mean_before"`
	RunningVarBefore  *convGoldenTensor            `json:"running_var_before"`
	RunningMeanAfter  *convGoldenTensor            `json:"running_mean_after"`
	RunningVarAfter   *convGoldenTensor            `json:"running_var_after"`
}

func (c *convGoldenCase) int(k string) int     { return int(c.Attrs[k].(float64)) }
func (c *convGoldenCase) f32(k string) float32 { return float32(c.Attrs[k].(float64)) }
func (c *convGoldenCase) flag(k string) bool   { return c.Attrs[k].(bool) }
func (c *convGoldenCase) has(name string) bool { return c.Inputs[name] != nil }
func (c *convGoldenCase) order() []string      { return []string{"x", "w", "b"} }

func TestConvPoolBatchNormGolden(t *testing.T) {
	raw, err := os.ReadFile("testdata/conv_golden.json")
	if err != nil {
		t.Fatalf("reading fixture (regenerate with /usr/bin/python3 scripts/gen_conv_golden.py): %v", err)
	}
	var file struct {
		Cases []*convGoldenCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatalf("testdata/conv_golden.json: %v", err)
	}
	if len(file.Cases) == 0 {
		t.Fatal("testdata/conv_golden.json holds no cases")
	}
	seen := map[string]bool{}
	for _, c := range file.Cases {
		seen[c.Op] = true
		t.Run(c.Name, func(t *testing.T) {
			tp := NewTape()
			vars := map[string]*Var{}
			for _, k := range c.order() {
				if c.has(k) {
					vars[k] = NewParam(k, c.Inputs[k].tensor())
				}
			}
			var rm, rv *tensor.Tensor
			if c.RunningMeanBefore != nil {
				rm, rv = c.RunningMeanBefore.tensor(), c.RunningVarBefore.tensor()
			}
			var out *Var
			switch c.Op {
			case "Conv2d":
				s, p, d := c.int("stride"), c.int("pad"), c.int("dilation")
				out = tp.Conv2d(vars["x"], vars["w"], vars["b"], ConvParams{
					StrideH: s, StrideW: s, PadH: p, PadW: p, DilationH: d, DilationW: d, Groups: c.int("groups")})
			case "MaxPool2d":
				out = tp.MaxPool2d(vars["x"], c.int("kernel"), c.int("stride"), c.int("pad"))
			case "AvgPool2d":
				out = tp.AvgPool2d(vars["x"], c.int("kernel"), c.int("stride"), c.int("pad"))
			case "GlobalAvgPool":
				out = tp.GlobalAvgPool(vars["x"])
			case "BatchNorm":
				out = tp.BatchNorm(vars["x"], vars["w"], vars["b"], rm, rv, c.flag("training"), c.f32("momentum"), c.f32("eps"))
			default:
				t.Fatalf("unknown op %q in fixture", c.Op)
			}
			goldenClose(t, "output", out.Value, &c.Output)
			if err := tp.BackwardWith(out, c.GradOut.tensor()); err != nil {
				t.Fatal(err)
			}
			for name, want := range c.Grads {
				goldenClose(t, "grad "+name, vars[name].Grad, want)
			}
			if c.RunningMeanAfter != nil {
				goldenClose(t, "running_mean", rm, c.RunningMeanAfter)
				goldenClose(t, "running_var", rv, c.RunningVarAfter)
			}
		})
	}
	for _, op := range []string{"Conv2d", "MaxPool2d", "AvgPool2d", "GlobalAvgPool", "BatchNorm"} {
		if !seen[op] {
			t.Errorf("fixture has no %s case", op)
		}
	}
}

func goldenClose(t *testing.T, what string, got *tensor.Tensor, want *convGoldenTensor) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: no value", what)
	}
	if !tensor.SameShape(got.Shape, want.Shape) {
		t.Fatalf("%s: shape %v, want %v", what, got.Shape, want.Shape)
	}
	worst, at := 0.0, 0
	for i, w := range want.Data {
		d := math.Abs(float64(got.Data[i]) - w)
		if d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	if worst > 1e-4 || math.IsNaN(worst) {
		t.Errorf("%s: element %d is %g, PyTorch %g (max abs diff %g > 1e-4)", what, at, got.Data[at], want.Data[at], worst)
	}
}
