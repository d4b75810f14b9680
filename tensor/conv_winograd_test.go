package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestWinogradCloseToDirect: a convolution that may use Winograd's
// algorithm (forward, backward data, backward weights) stays within a
// small multiple of float32 rounding of the direct one, on a ResNet block's
// shape. (Where oneDNN has no Winograd kernel both are direct and agree.)
func TestWinogradCloseToDirect(t *testing.T) {
	defer func(was bool) { winogradAllowed = was }(winogradAllowed)
	winogradAllowed = true
	rng := rand.New(rand.NewPCG(5, 6))
	fill := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(rng.NormFloat64())
		}
		return s
	}
	direct := ConvGeom{N: 4, C: 64, H: 16, W: 16, O: 64, KH: 3, KW: 3, PadH: 1, PadW: 1}
	wino := direct
	wino.Winograd = true
	x, w, b, dy := fill(direct.InputLen()), fill(direct.WeightLen()), fill(direct.O), fill(direct.OutputLen())
	// within reports the largest difference relative to the largest value.
	within := func(what string, got, want []float32, tol float64) {
		t.Helper()
		var diff, scale float64
		for i := range want {
			diff = max(diff, math.Abs(float64(got[i]-want[i])))
			scale = max(scale, math.Abs(float64(want[i])))
		}
		if !(diff <= tol*scale) {
			t.Errorf("%s: max |Winograd - direct| %.3g, %.3g of the largest value %.3g (tolerance %.0e)", what, diff, diff/scale, scale, tol)
		}
		t.Logf("%s: max |Winograd - direct| / max |direct| = %.2g", what, diff/scale)
	}
	y0, y1 := make([]float32, direct.OutputLen()), make([]float32, direct.OutputLen())
	ConvForward(direct, x, w, b, y0)
	ConvForward(wino, x, w, b, y1)
	within("forward", y1, y0, 1e-5)
	dx0, dx1 := make([]float32, direct.InputLen()), make([]float32, direct.InputLen())
	ConvBackwardData(direct, dy, w, dx0, false)
	ConvBackwardData(wino, dy, w, dx1, false)
	within("backward data", dx1, dx0, 1e-5)
	dw0, dw1 := make([]float32, direct.WeightLen()), make([]float32, direct.WeightLen())
	db0, db1 := make([]float32, direct.O), make([]float32, direct.O)
	ConvBackwardWeights(direct, x, dy, dw0, db0, false)
	ConvBackwardWeights(wino, x, dy, dw1, db1, false)
	within("backward weights", dw1, dw0, 1e-5)
	within("bias gradient", db1, db0, 1e-6)
}
