package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestPackedConvMatchesConvForward: the packed inference convolution gives
// ConvForward's output (then the ReLU when packed with one), also for
// batch and image sizes other than the one it was packed for.
func TestPackedConvMatchesConvForward(t *testing.T) {
	if !dnnlState().ok {
		t.Skip("oneDNN unavailable")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	fill := func(n int) []float32 { return convRand(rng, n) }
	for _, c := range []struct {
		name       string
		g          ConvGeom
		bias, relu bool
	}{
		{"3x3 pad 1", ConvGeom{N: 1, C: 16, H: 8, W: 8, O: 32, KH: 3, KW: 3, PadH: 1, PadW: 1}, true, true},
		{"rgb stem", ConvGeom{N: 2, C: 3, H: 32, W: 32, O: 64, KH: 3, KW: 3, PadH: 1, PadW: 1}, false, true},
		{"1x1 stride 2", ConvGeom{N: 1, C: 64, H: 8, W: 8, O: 128, KH: 1, KW: 1, StrideH: 2, StrideW: 2}, true, false},
		{"grouped dilated", ConvGeom{N: 1, C: 8, H: 9, W: 7, O: 8, KH: 3, KW: 3, PadH: 2, PadW: 2, DilationH: 2, DilationW: 2, Groups: 4}, false, false},
		{"patch embed", ConvGeom{N: 1, C: 3, H: 32, W: 32, O: 48, KH: 16, KW: 16, StrideH: 16, StrideW: 16}, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := fill(c.g.WeightLen())
			var b []float32
			if c.bias {
				b = fill(c.g.O)
			}
			pc := PackConv(c.g, w, c.bias, c.relu)
			if pc == nil {
				t.Fatal("PackConv refused a shape oneDNN runs")
			}
			for _, n := range []int{c.g.N, 3, 1} {
				g := c.g
				g.N = n
				if n == 3 {
					g.H, g.W = g.H*2, g.W*2 // another image size on the same weights
				}
				x := fill(g.InputLen())
				want := make([]float32, g.OutputLen())
				ConvForward(g, x, w, b, want)
				if c.relu {
					for i, v := range want {
						want[i] = max(v, 0)
					}
				}
				got := make([]float32, g.OutputLen())
				if !pc.Forward(g, x, b, got) {
					t.Fatalf("batch %d: Forward refused", n)
				}
				for i := range want {
					if d := math.Abs(float64(got[i] - want[i])); d > 1e-4*(1+math.Abs(float64(want[i]))) {
						t.Fatalf("batch %d, %dx%d: element %d = %g, want %g", n, g.H, g.W, i, got[i], want[i])
					}
				}
			}
		})
	}
}
