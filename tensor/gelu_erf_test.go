package tensor

import (
	"math"
	"testing"
)

// TestGELUErfAccuracy: GELUErf against x·Φ(x) in float64 from math.Erf, on
// a dense grid across [-16, 16] and at the edges (zero, infinities, NaN).
func TestGELUErfAccuracy(t *testing.T) {
	var x []float32
	for v := -16.0; v <= 16; v += 1.0 / 512 {
		x = append(x, float32(v))
	}
	x = append(x, 0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 1e-7, -1e-7, float32(math.Inf(1)))
	o := make([]float32, len(x))
	if !GELUErf(o, x) {
		t.Skip("built without cgo")
	}
	worst := 0.0
	for i, v := range x {
		xv := float64(v)
		want := 0.5 * xv * math.Erfc(-xv/math.Sqrt2)
		if math.IsInf(xv, 1) {
			want = xv
		}
		err := 0.0
		if float64(o[i]) != want { // also true for NaN
			err = math.Abs(float64(o[i])-want) / (1 + math.Abs(want))
		}
		if !(err <= 3e-7) { // also catches NaN
			t.Fatalf("GELU(%g) = %g, want %g (error %.3g)", v, o[i], want, err)
		}
		worst = max(worst, err)
	}
	t.Logf("largest error %.3g·(1+|y|) over %d values", worst, len(x))
	nan := []float32{float32(math.NaN())}
	GELUErf(nan, nan)
	if !math.IsNaN(float64(nan[0])) {
		t.Errorf("GELU(NaN) = %g, want NaN", nan[0])
	}
}
