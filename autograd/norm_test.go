package autograd

import (
	"fmt"
	"math"
	"testing"

	"github.com/sslzoo/sslzoo/tensor"
)

func TestLayerNormGrad(t *testing.T) {
	cases := []gradCase{
		{name: "Affine[4,6]", shapes: [][]int{{4, 6}, {6}, {6}},
			f: func(tp *Tape, in []*Var) *Var { return tp.LayerNorm(in[0], in[1], in[2], 1e-5) }},
		{name: "WeightOnly[2,3,5]", shapes: [][]int{{2, 3, 5}, {5}},
			f: func(tp *Tape, in []*Var) *Var { return tp.LayerNorm(in[0], in[1], nil, 1e-5) }},
		{name: "BiasOnly[3,4]", shapes: [][]int{{3, 4}, {4}},
			f: func(tp *Tape, in []*Var) *Var { return tp.LayerNorm(in[0], nil, in[1], 1e-5) }},
		{name: "Plain[5,3]", shapes: [][]int{{5, 3}},
			f: func(tp *Tape, in []*Var) *Var { return tp.LayerNorm(in[0], nil, nil, 1e-3) }},
		{name: "Vector[8]", shapes: [][]int{{8}, {8}, {8}},
			f: func(tp *Tape, in []*Var) *Var { return tp.LayerNorm(in[0], in[1], in[2], 1e-5) }},
	}
	runGradCases(t, cases)
}

// Many rows: the parameter gradients are summed per goroutine; compare
// everything with a float64 reference.
func TestLayerNormLarge(t *testing.T) {
	const rows, d = 300, 64
	x, w, b := opRand(1, fillUniform, rows, d), opRand(2, fillUniform, d), opRand(3, fillUniform, d)
	xv, wv, bv := NewParam("x", x), NewParam("w", w), NewParam("b", b)
	tp := NewTape()
	y := tp.LayerNorm(xv, wv, bv, 1e-5)
	g := opRand(4, fillUniform, rows, d)
	if err := tp.BackwardWith(y, g); err != nil {
		t.Fatal(err)
	}
	wantY := make([]float64, rows*d)
	wantX := make([]float64, rows*d)
	wantW, wantB := make([]float64, d), make([]float64, d)
	for r := range rows {
		var m, v float64
		for i := range d {
			m += float64(x.Data[r*d+i])
		}
		m /= d
		for i := range d {
			t := float64(x.Data[r*d+i]) - m
			v += t * t
		}
		rs := 1 / math.Sqrt(v/d+1e-5)
		var s1, s2 float64
		xh := make([]float64, d)
		for i := range d {
			xh[i] = (float64(x.Data[r*d+i]) - m) * rs
			wantY[r*d+i] = xh[i]*float64(w.Data[i]) + float64(b.Data[i])
			dy := float64(g.Data[r*d+i]) * float64(w.Data[i])
			s1 += dy
			s2 += dy * xh[i]
			wantW[i] += float64(g.Data[r*d+i]) * xh[i]
			wantB[i] += float64(g.Data[r*d+i])
		}
		for i := range d {
			dy := float64(g.Data[r*d+i]) * float64(w.Data[i])
			wantX[r*d+i] = rs * (dy - s1/d - xh[i]*s2/d)
		}
	}
	for name, c := range map[string]struct {
		got  []float32
		want []float64
	}{"y": {y.Value.Data, wantY}, "gx": {xv.Grad.Data, wantX}, "gw": {wv.Grad.Data, wantW}, "gb": {bv.Grad.Data, wantB}} {
		if err := opClose(c.got, c.want, 1e-5); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestLayerNormRejectsBadParams(t *testing.T) {
	tp := NewTape()
	x := Const(tensor.New(2, 4))
	if Catch(func() { tp.LayerNorm(x, Const(tensor.New(3)), nil, 1e-5) }) == nil {
		t.Fatal("weight [3] for D=4 accepted")
	}
}

func TestL2NormalizeGrad(t *testing.T) {
	var cases []gradCase
	for _, c := range []struct {
		shape []int
		axis  int
	}{{[]int{4, 5}, 1}, {[]int{4, 5}, -1}, {[]int{3, 4, 2}, 1}, {[]int{3, 4}, 0}, {[]int{6}, 0}} {
		axis := c.axis
		cases = append(cases, gradCase{name: fmt.Sprintf("L2%v%d", c.shape, axis), shapes: [][]int{c.shape},
			f: func(tp *Tape, in []*Var) *Var { return tp.L2Normalize(in[0], axis, 1e-12) }})
	}
	// Norms below eps: the output is x/eps, linear in x.
	cases = append(cases, gradCase{name: "L2Clamped", shapes: [][]int{{3, 4}},
		f: func(tp *Tape, in []*Var) *Var { return tp.L2Normalize(tp.MulScalar(in[0], 1e-3), 1, 0.01) }})
	runGradCases(t, cases)
}

func TestL2NormalizeForward(t *testing.T) {
	tp := NewTape()
	x := Const(tensor.FromSlice([]float32{3, 4, 0, 0, 1e-4, 0}, 3, 2))
	y := tp.L2Normalize(x, 1, 1e-3)
	if err := opClose(y.Value.Data, opVals(0.6, 0.8, 0, 0, 0.1, 0), 1e-7); err != nil {
		t.Fatal(err)
	}
}
