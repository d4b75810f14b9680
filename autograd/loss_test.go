package autograd

import (
	"math"
	"testing"

	"github.com/sslzoo/sslzoo/tensor"
)

func TestCrossEntropyGrad(t *testing.T) {
	cases := []gradCase{
		{name: "CE[5,4]", shapes: [][]int{{5, 4}},
			f: func(tp *Tape, in []*Var) *Var { return tp.CrossEntropy(in[0], []int{1, IgnoreIndex, 3, 0, 3}) }},
		{name: "CE[1,3]", shapes: [][]int{{1, 3}},
			f: func(tp *Tape, in []*Var) *Var { return tp.CrossEntropy(in[0], []int{2}) }},
		{name: "CEScaled", shapes: [][]int{{3, 6}},
			f: func(tp *Tape, in []*Var) *Var { return tp.CrossEntropy(tp.MulScalar(in[0], 5), []int{5, 0, 2}) }},
		{name: "Soft[3,4]", shapes: [][]int{{3, 4}, {3, 4}}, fills: []opFill{fillUniform, fillPositive},
			f: func(tp *Tape, in []*Var) *Var { return tp.CrossEntropySoft(in[0], in[1]) }},
		{name: "SoftOfSoftmax", shapes: [][]int{{2, 5}, {2, 5}},
			f: func(tp *Tape, in []*Var) *Var { return tp.CrossEntropySoft(in[0], tp.Softmax(in[1], 1)) }},
	}
	runGradCases(t, cases)
}

func TestCrossEntropyForward(t *testing.T) {
	tp := NewTape()
	zeros := Const(tensor.New(3, 4))
	if got := tp.CrossEntropy(zeros, []int{0, 3, IgnoreIndex}); math.Abs(float64(got.Value.Data[0])-math.Log(4)) > 1e-6 || len(got.Shape()) != 0 {
		t.Fatalf("uniform logits: %v, want ln 4 as a scalar", got.Value)
	}
	// Row 0: logits [0, ln 3] target 1 -> -ln(3/4); row 1: target 0 -> -ln(1/4).
	x := Const(tensor.FromSlice([]float32{0, float32(math.Log(3)), 0, float32(math.Log(3))}, 2, 2))
	want := (-math.Log(0.75) - math.Log(0.25)) / 2
	if got := tp.CrossEntropy(x, []int{1, 0}); math.Abs(float64(got.Value.Data[0])-want) > 1e-6 {
		t.Fatalf("got %g, want %g", got.Value.Data[0], want)
	}
	p := Const(tensor.FromSlice([]float32{0, 1, 1, 0}, 2, 2))
	if got := tp.CrossEntropySoft(x, p); math.Abs(float64(got.Value.Data[0])-want) > 1e-6 {
		t.Fatalf("soft one-hot: got %g, want %g", got.Value.Data[0], want)
	}
	if got := tp.CrossEntropy(x, []int{IgnoreIndex, IgnoreIndex}); !math.IsNaN(float64(got.Value.Data[0])) {
		t.Fatalf("all ignored: %g, want NaN as PyTorch", got.Value.Data[0])
	}
	for name, bad := range map[string]func(){
		"target range": func() { tp.CrossEntropy(x, []int{2, 0}) },
		"target count": func() { tp.CrossEntropy(x, []int{0}) },
		"rank":         func() { tp.CrossEntropy(Const(tensor.New(2)), []int{0, 0}) },
		"soft shape":   func() { tp.CrossEntropySoft(x, Const(tensor.New(2, 3))) },
	} {
		if Catch(bad) == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A loss over a real batch drives Backward from its scalar output.
func TestCrossEntropyBackwardScalar(t *testing.T) {
	w := NewParam("w", opRand(3, fillUniform, 4, 3))
	tp := NewTape()
	x := Const(opRand(4, fillUniform, 8, 4))
	loss := tp.CrossEntropy(tp.Transpose(tp.Transpose(tp.Reshape(tp.Mul(tp.Reshape(x, 8, 4, 1), w), 8, 12), 1, 0), 1, 0), []int{0, 1, 2, 3, 4, 5, 6, 7})
	if err := tp.Backward(loss); err != nil {
		t.Fatal(err)
	}
	if w.Grad == nil {
		t.Fatal("no gradient")
	}
}
