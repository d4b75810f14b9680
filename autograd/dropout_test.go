package autograd

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sslzoo/sslzoo/tensor"
)

func TestDropoutGrad(t *testing.T) {
	cases := []gradCase{
		{name: "p0.3[4,5]", shapes: [][]int{{4, 5}},
			f: func(tp *Tape, in []*Var) *Var {
				return tp.Dropout(in[0], 0.3, true, rand.New(rand.NewPCG(1, 2)))
			}},
		{name: "p0.5[7]", shapes: [][]int{{7}},
			f: func(tp *Tape, in []*Var) *Var {
				return tp.Dropout(in[0], 0.5, true, rand.New(rand.NewPCG(3, 4)))
			}},
	}
	runGradCases(t, cases)
}

func TestDropoutSemantics(t *testing.T) {
	const n, p = 100001, 0.25
	x := opRand(1, fillAwayZero, n)
	tp := NewTape()
	xv := NewParam("x", x)
	y := tp.Dropout(xv, p, true, rand.New(rand.NewPCG(7, 7)))
	dropped := 0
	var sx, sy float64
	for i, v := range y.Value.Data {
		switch {
		case v == 0:
			dropped++
		case math.Abs(float64(v)-float64(x.Data[i])/(1-p)) > 1e-6:
			t.Fatalf("element %d: kept value %g, want x/(1-p) = %g", i, v, x.Data[i]/(1-p))
		}
		sx += math.Abs(float64(x.Data[i]))
		sy += math.Abs(float64(v))
	}
	// Binomial(n, p): the standard deviation of the fraction is 0.0014.
	if frac := float64(dropped) / n; math.Abs(frac-p) > 0.007 {
		t.Fatalf("dropped fraction %.4f, want %.2f", frac, p)
	}
	// Inverted scaling keeps the expected magnitude.
	if math.Abs(sy/sx-1) > 0.02 {
		t.Fatalf("E|y|/E|x| = %.4f, want 1", sy/sx)
	}
	// The gradient uses the same mask.
	if err := tp.BackwardWith(y, tensor.FromSlice(slices.Repeat([]float32{1}, n), n)); err != nil {
		t.Fatal(err)
	}
	for i, v := range y.Value.Data {
		if (v == 0) != (xv.Grad.Data[i] == 0) {
			t.Fatalf("element %d: gradient mask differs from forward mask", i)
		}
	}

	// Same seed, same mask; another seed, another mask.
	a := tp.Dropout(Const(x), p, true, rand.New(rand.NewPCG(7, 7)))
	b := tp.Dropout(Const(x), p, true, rand.New(rand.NewPCG(8, 7)))
	if !slices.Equal(a.Value.Data, y.Value.Data) || slices.Equal(b.Value.Data, y.Value.Data) {
		t.Fatal("dropout mask is not a function of the rng state")
	}

	// Identity cases return x itself and record nothing.
	before := len(tp.Nodes())
	if tp.Dropout(xv, p, false, nil) != xv || tp.Dropout(xv, 0, true, nil) != xv || len(tp.Nodes()) != before {
		t.Fatal("eval mode or p = 0 is not the identity")
	}
	if z := tp.Dropout(Const(x), 1, true, rand.New(rand.NewPCG(1, 1))); slices.ContainsFunc(z.Value.Data, func(v float32) bool { return v != 0 }) {
		t.Fatal("p = 1 kept something")
	}
	for _, bad := range []float32{-0.1, 1.5, float32(math.NaN())} {
		if Catch(func() { tp.Dropout(Const(x), bad, true, rand.New(rand.NewPCG(1, 1))) }) == nil {
			t.Errorf("p = %g accepted", bad)
		}
	}
	if Catch(func() { tp.Dropout(Const(x), 0.5, true, nil) }) == nil {
		t.Error("nil rng accepted")
	}
}
