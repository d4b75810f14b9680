package autograd

import (
	"fmt"
	"math"
	"testing"

	"github.com/sslzoo/sslzoo/tensor"
)

func TestSoftmaxGrad(t *testing.T) {
	var cases []gradCase
	for _, c := range []struct {
		shape []int
		axis  int
	}{
		{[]int{3, 5}, -1}, {[]int{2, 4, 3}, 1}, {[]int{2, 4, 3}, 0}, {[]int{1}, 0}, {[]int{2, 3, 2, 2}, 1},
	} {
		axis := c.axis
		cases = append(cases,
			gradCase{name: fmt.Sprintf("Softmax%v%d", c.shape, axis), shapes: [][]int{c.shape},
				f: func(tp *Tape, in []*Var) *Var { return tp.Softmax(in[0], axis) }},
			gradCase{name: fmt.Sprintf("LogSoftmax%v%d", c.shape, axis), shapes: [][]int{c.shape},
				f: func(tp *Tape, in []*Var) *Var { return tp.LogSoftmax(in[0], axis) }})
	}
	runGradCases(t, cases)
}

func TestSoftmaxStable(t *testing.T) {
	tp := NewTape()
	inf := float32(math.Inf(-1))
	x := Const(tensor.FromSlice([]float32{1000, 1000, -1000, inf, 0, float32(math.Log(3))}, 2, 3))
	s := tp.Softmax(x, 1)
	if err := opClose(s.Value.Data, opVals(0.5, 0.5, 0, 0, 0.25, 0.75), 1e-7); err != nil {
		t.Fatalf("Softmax: %v", err)
	}
	l := tp.LogSoftmax(x, 1)
	want := opVals(-math.Ln2, -math.Ln2, -2000-math.Ln2, math.Inf(-1), math.Log(0.25), math.Log(0.75))
	if err := opClose(l.Value.Data, want, 1e-7); err != nil {
		t.Fatalf("LogSoftmax: %v", err)
	}
	// Along axis 0 of the same values (strided path).
	s0 := tp.Softmax(Const(tensor.FromSlice([]float32{1000, 0, 1000, float32(math.Log(3))}, 2, 2)), 0)
	if err := opClose(s0.Value.Data, opVals(0.5, 0.25, 0.5, 0.75), 1e-7); err != nil {
		t.Fatalf("Softmax axis 0: %v", err)
	}
}

// Large rows are split across goroutines; compare with a float64 loop.
func TestSoftmaxLarge(t *testing.T) {
	x := opRand(8, fillUniform, 200, 300)
	for i := range x.Data {
		x.Data[i] *= 8
	}
	tp := NewTape()
	got := tp.Softmax(Const(x), -1)
	want := make([]float64, len(x.Data))
	for r := range 200 {
		row := x.Data[r*300 : (r+1)*300]
		m, s := math.Inf(-1), 0.0
		for _, v := range row {
			m = math.Max(m, float64(v))
		}
		for _, v := range row {
			s += math.Exp(float64(v) - m)
		}
		for i, v := range row {
			want[r*300+i] = math.Exp(float64(v)-m) / s
		}
	}
	if err := opClose(got.Value.Data, want, 1e-6); err != nil {
		t.Fatal(err)
	}
}
