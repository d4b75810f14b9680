package autograd

import (
	"fmt"
	"testing"

	"github.com/sslzoo/sslzoo/tensor"
)

func TestReduceGrad(t *testing.T) {
	type r struct {
		shape []int
		axes  []int
		keep  bool
	}
	var cases []gradCase
	for _, c := range []r{
		{[]int{2, 3, 4}, []int{1}, false},
		{[]int{2, 3, 4}, []int{0, 2}, true},
		{[]int{2, 3, 4}, []int{-1}, false},
		{[]int{3, 4}, nil, false},
		{[]int{2, 3, 4, 2}, []int{1, 2}, true},
		{[]int{5, 3}, []int{0}, false},
		{[]int{1, 3, 1}, []int{0, 2}, false},
	} {
		c := c
		cases = append(cases,
			gradCase{name: fmt.Sprintf("Sum%v%v%v", c.shape, c.axes, c.keep), shapes: [][]int{c.shape},
				f: func(tp *Tape, in []*Var) *Var { return tp.Sum(in[0], c.axes, c.keep) }},
			gradCase{name: fmt.Sprintf("Mean%v%v%v", c.shape, c.axes, c.keep), shapes: [][]int{c.shape},
				f: func(tp *Tape, in []*Var) *Var { return tp.Mean(in[0], c.axes, c.keep) }})
	}
	for _, s := range [][]int{{}, {5}, {2, 3, 4}} {
		cases = append(cases,
			gradCase{name: fmt.Sprintf("SumAll%v", s), shapes: [][]int{s}, f: func(tp *Tape, in []*Var) *Var { return tp.SumAll(in[0]) }},
			gradCase{name: fmt.Sprintf("MeanAll%v", s), shapes: [][]int{s}, f: func(tp *Tape, in []*Var) *Var { return tp.MeanAll(in[0]) }})
	}
	for _, axis := range []int{0, 1, -1} {
		for _, keep := range []bool{false, true} {
			axis, keep := axis, keep
			cases = append(cases, gradCase{
				name: fmt.Sprintf("Max%d%v", axis, keep), shapes: [][]int{{3, 4, 2}}, fills: []opFill{fillDistinct},
				f: func(tp *Tape, in []*Var) *Var { return tp.Max(in[0], axis, keep) },
			})
		}
	}
	runGradCases(t, cases)
}

func TestReduceForward(t *testing.T) {
	tp := NewTape()
	x := Const(tensor.FromSlice([]float32{1, 2, 3, 4, 5, 6}, 2, 3))
	checks := []struct {
		name  string
		v     *Var
		shape []int
		want  []float64
	}{
		{"Sum0", tp.Sum(x, []int{0}, false), []int{3}, opVals(5, 7, 9)},
		{"Sum1k", tp.Sum(x, []int{1}, true), []int{2, 1}, opVals(6, 15)},
		{"MeanAll", tp.MeanAll(x), []int{}, opVals(3.5)},
		{"SumAll", tp.SumAll(x), nil, opVals(21)},
		{"Mean-1", tp.Mean(x, []int{-1}, false), []int{2}, opVals(2, 5)},
		{"Max0", tp.Max(x, 0, false), []int{3}, opVals(4, 5, 6)},
		{"Max1k", tp.Max(x, 1, true), []int{2, 1}, opVals(3, 6)},
	}
	for _, c := range checks {
		if !tensor.SameShape(c.v.Shape(), c.shape) && len(c.shape)+len(c.v.Shape()) != 0 {
			t.Errorf("%s: shape %v, want %v", c.name, c.v.Shape(), c.shape)
		}
		if err := opClose(c.v.Value.Data, c.want, 0); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	for _, bad := range []func(){
		func() { tp.Sum(x, []int{2}, false) },
		func() { tp.Sum(x, []int{1, -1}, false) },
		func() { tp.Max(x, -3, false) },
	} {
		if Catch(bad) == nil {
			t.Error("bad axis accepted")
		}
	}
}

// A scalar loss from SumAll/MeanAll (shape []) must drive Backward.
func TestScalarLossBackward(t *testing.T) {
	x := NewParam("x", tensor.FromSlice([]float32{1, 2, 3, 4}, 2, 2))
	tp := NewTape()
	loss := tp.MeanAll(tp.Square(x))
	if loss.Shape() == nil || len(loss.Shape()) != 0 || loss.Value.Numel() != 1 {
		t.Fatalf("loss shape %v", loss.Shape())
	}
	if err := tp.Backward(loss); err != nil {
		t.Fatal(err)
	}
	if err := opClose(x.Grad.Data, opVals(0.5, 1, 1.5, 2), 1e-7); err != nil {
		t.Fatal(err)
	}
}

// Reductions large enough to split across goroutines, checked against a
// float64 loop.
func TestReduceLargeParallel(t *testing.T) {
	x := opRand(5, fillUniform, 256, 32, 9)
	tp := NewTape()
	for _, axes := range [][]int{{0}, {1}, {2}, {0, 2}} {
		got := tp.Sum(Const(x), axes, true)
		want := make([]float64, got.Value.Numel())
		st := broadcastStrides(got.Shape(), x.Shape)
		for i := range 256 {
			for j := range 32 {
				for k := range 9 {
					want[i*st[0]+j*st[1]+k*st[2]] += float64(x.Data[(i*32+j)*9+k])
				}
			}
		}
		if err := opClose(got.Value.Data, want, 1e-5); err != nil {
			t.Errorf("axes %v: %v", axes, err)
		}
	}
}
