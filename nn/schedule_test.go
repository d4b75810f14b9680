package nn

import (
	"math"
	"testing"
)

func TestWarmupCosine(t *testing.T) {
	// warmup 10, total 110, base 1, final 0.1: hand-computed points.
	for _, c := range []struct {
		step int
		want float64
	}{
		{0, 0}, {1, 0.1}, {5, 0.5}, {9, 0.9},
		{10, 1},             // end of warmup: cos(0)
		{60, 0.1 + 0.9*0.5}, // half way: cos(pi/2) = 0
		{35, 0.1 + 0.9*0.5*(1+math.Cos(math.Pi/4))},
		{110, 0.1}, {500, 0.1}, // after the end it stays at the final value
	} {
		if got := WarmupCosine(c.step, 10, 110, 1, 0.1); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("step %d: %g, want %g", c.step, got, c.want)
		}
	}
	// No warmup starts at the base rate.
	if got := WarmupCosine(0, 0, 100, 0.3, 0); got != 0.3 {
		t.Errorf("no warmup, step 0: %g", got)
	}
	// Monotone non-increasing after warmup.
	prev := math.Inf(1)
	for s := 10; s <= 110; s++ {
		v := WarmupCosine(s, 10, 110, 1, 0.1)
		if v > prev {
			t.Fatalf("lr rises at step %d", s)
		}
		prev = v
	}
}

func TestCosineMomentum(t *testing.T) {
	// BYOL: m0 = 0.996 over K steps.
	for _, c := range []struct {
		k    int
		want float64
	}{{0, 0.996}, {50, 1 - 0.004*0.5}, {25, 1 - 0.004*(math.Cos(math.Pi/4)+1)/2}, {100, 1}, {150, 1}} {
		if got := CosineMomentum(c.k, 100, 0.996); math.Abs(got-c.want) > 1e-15 {
			t.Errorf("k=%d: %g, want %g", c.k, got, c.want)
		}
	}
	e := &EMA{Base: 0.999}
	if e.Momentum(12345) != 0.999 {
		t.Error("TotalSteps 0 must keep the base momentum")
	}
}
