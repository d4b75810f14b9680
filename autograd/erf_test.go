package autograd

import (
	"math"
	"testing"

	"github.com/sslzoo/sslzoo/tensor"
)

func TestErf32MatchesMath(t *testing.T) {
	worst := 0.0
	for x := -6.0; x <= 6.0; x += 1e-4 {
		got := float64(erf32(float32(x)))
		want := math.Erf(float64(float32(x)))
		// Absolute error, and relative error near 0 where erf is ~x.
		if d := math.Abs(got - want); d > worst {
			worst = d
		}
		if math.Abs(x) < 0.5 && x != 0 && math.Abs(got-want) > 1e-6*math.Abs(want) {
			t.Fatalf("erf32(%g) = %g, want %g (relative error too large)", x, got, want)
		}
	}
	if worst > 4e-7 {
		t.Fatalf("erf32 worst absolute error %.3g, want <= 4e-7", worst)
	}
	if v := erf32(float32(math.NaN())); v == v {
		t.Fatal("erf32(NaN) is not NaN")
	}
	if erf32(float32(math.Inf(-1))) != -1 || erf32(float32(math.Inf(1))) != 1 {
		t.Fatal("erf32(±Inf) is not ±1")
	}
}

func TestErfGrad(t *testing.T) {
	for _, shape := range [][]int{{7}, {3, 4, 5}} {
		x := tensor.New(shape...)
		for i := range x.Data {
			x.Data[i] = float32(i%13)*0.37 - 2.2
		}
		f := func(tp *Tape, in []*Var) *Var { return tp.Erf(in[0]) }
		if err := CheckGrad(f, []*tensor.Tensor{x}, GradCheck{}); err != nil {
			t.Fatalf("shape %v: %v", shape, err)
		}
	}
}
