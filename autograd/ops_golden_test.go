package autograd

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/sslzoo/sslzoo/tensor"
)

// testdata/ops_golden.json comes from scripts/gen_ops_golden.py (PyTorch,
// float64 reference). Each case is replayed here: forward output and the
// gradient of sum(grad_out*out) with respect to every input must match
// within 1e-5 absolute + 1e-5 relative.

type goldenTensor struct {
	Shape []int     `json:"shape"`
	Data  []float64 `json:"data"`
}

type goldenCase struct {
	Name    string          `json:"name"`
	Op      string          `json:"op"`
	Attrs   map[string]any  `json:"attrs"`
	Ints    []int           `json:"ints"`
	Inputs  []goldenTensor  `json:"inputs"`
	GradOut goldenTensor    `json:"grad_out"`
	Output  goldenTensor    `json:"output"`
	Grads   []*goldenTensor `json:"grads"`
}

func (c *goldenCase) float(key string) float32 { return float32(c.Attrs[key].(float64)) }
func (c *goldenCase) int(key string) int       { return int(c.Attrs[key].(float64)) }
func (c *goldenCase) bool(key string) bool     { return c.Attrs[key].(bool) }
func (c *goldenCase) ints(key string) []int {
	raw := c.Attrs[key].([]any)
	out := make([]int, len(raw))
	for i, v := range raw {
		out[i] = int(v.(float64))
	}
	return out
}

// goldenOp applies the case's op through the Go API.
func goldenOp(t *testing.T, tp *Tape, c *goldenCase, in []*Var) *Var {
	switch c.Op {
	case "Add":
		return tp.Add(in[0], in[1])
	case "Sub":
		return tp.Sub(in[0], in[1])
	case "Mul":
		return tp.Mul(in[0], in[1])
	case "Div":
		return tp.Div(in[0], in[1])
	case "AddScalar":
		return tp.AddScalar(in[0], c.float("value"))
	case "MulScalar":
		return tp.MulScalar(in[0], c.float("value"))
	case "PowScalar":
		return tp.PowScalar(in[0], c.float("exponent"))
	case "Neg":
		return tp.Neg(in[0])
	case "Exp":
		return tp.Exp(in[0])
	case "Log":
		return tp.Log(in[0])
	case "Sqrt":
		return tp.Sqrt(in[0])
	case "Square":
		return tp.Square(in[0])
	case "Abs":
		return tp.Abs(in[0])
	case "ReLU":
		return tp.ReLU(in[0])
	case "GELU":
		return tp.GELU(in[0])
	case "Sigmoid":
		return tp.Sigmoid(in[0])
	case "Tanh":
		return tp.Tanh(in[0])
	case "Sum":
		return tp.Sum(in[0], c.ints("axes"), c.bool("keepdims"))
	case "Mean":
		return tp.Mean(in[0], c.ints("axes"), c.bool("keepdims"))
	case "SumAll":
		return tp.SumAll(in[0])
	case "MeanAll":
		return tp.MeanAll(in[0])
	case "Max":
		return tp.Max(in[0], c.int("axis"), c.bool("keepdims"))
	case "Softmax":
		return tp.Softmax(in[0], c.int("axis"))
	case "LogSoftmax":
		return tp.LogSoftmax(in[0], c.int("axis"))
	case "LayerNorm":
		var w, b *Var
		if c.bool("has_weight") {
			w = in[1]
		}
		if c.bool("has_bias") {
			b = in[len(in)-1]
		}
		return tp.LayerNorm(in[0], w, b, c.float("epsilon"))
	case "L2Normalize":
		x := in[0]
		if _, ok := c.Attrs["prescale"]; ok {
			s := c.float("prescale")
			return tp.MulScalar(tp.L2Normalize(tp.MulScalar(x, s), c.int("axis"), c.float("eps")), 1/s)
		}
		return tp.L2Normalize(x, c.int("axis"), c.float("eps"))
	case "CrossEntropy":
		return tp.CrossEntropy(in[0], c.Ints)
	case "CrossEntropySoft":
		return tp.CrossEntropySoft(in[0], in[1])
	case "Embedding":
		return tp.Embedding(in[0], c.Ints, c.ints("shape"))
	case "Reshape":
		return tp.Reshape(in[0], c.ints("shape")...)
	case "Transpose":
		return tp.Transpose(in[0], c.ints("perm")...)
	case "Concat":
		return tp.Concat(in, c.int("axis"))
	case "Slice":
		return tp.Slice(in[0], c.int("axis"), c.int("start"), c.int("end"))
	case "Gather":
		return tp.Gather(in[0], c.int("axis"), c.Ints)
	case "TakeAlongAxis":
		return tp.TakeAlongAxis(in[0], c.int("axis"), c.Ints, c.int("k"))
	}
	t.Fatalf("golden case %s: unknown op %q", c.Name, c.Op)
	return nil
}

func toF32(g goldenTensor) *tensor.Tensor {
	t := tensor.New(g.Shape...)
	for i, v := range g.Data {
		t.Data[i] = float32(v)
	}
	return t
}

func TestOpsGolden(t *testing.T) {
	raw, err := os.ReadFile("testdata/ops_golden.json")
	if err != nil {
		t.Fatalf("read golden file (regenerate with /usr/bin/python3 scripts/gen_ops_golden.py): %v", err)
	}
	var file struct {
		Cases []goldenCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatalf("parse testdata/ops_golden.json: %v", err)
	}
	if len(file.Cases) < 50 {
		t.Fatalf("only %d golden cases", len(file.Cases))
	}
	const tol = 1e-5
	for i := range file.Cases {
		c := &file.Cases[i]
		t.Run(c.Name, func(t *testing.T) {
			tp := NewTape()
			in := make([]*Var, len(c.Inputs))
			for j, g := range c.Inputs {
				in[j] = NewParam("", toF32(g))
			}
			out := goldenOp(t, tp, c, in)
			if !tensor.SameShape(out.Shape(), c.Output.Shape) && !(len(out.Shape()) == 0 && len(c.Output.Shape) == 0) {
				t.Fatalf("output shape %v, want %v", out.Shape(), c.Output.Shape)
			}
			if err := opClose(out.Value.Data, c.Output.Data, tol); err != nil {
				t.Fatalf("forward: %v", err)
			}
			if err := tp.BackwardWith(out, toF32(c.GradOut)); err != nil {
				t.Fatal(err)
			}
			for j, want := range c.Grads {
				if want == nil {
					continue
				}
				if in[j].Grad == nil {
					t.Fatalf("input %d: no gradient", j)
				}
				if err := opClose(in[j].Grad.Data, want.Data, tol); err != nil {
					t.Fatalf("gradient of input %d: %v", j, err)
				}
			}
		})
	}
}
