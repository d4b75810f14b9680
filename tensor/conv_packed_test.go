package tensor

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestPackedConvMatchesConvForward: the packed inference convolution gives
// ConvForward's output (then the sum and the ReLU it was packed with), in
// every layout, also for batch and image sizes other than the one it was
// packed for.
func TestPackedConvMatchesConvForward(t *testing.T) {
	if !dnnlState().ok {
		t.Skip("oneDNN unavailable")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	fill := func(n int) []float32 { return convRand(rng, n) }
	for _, c := range []struct {
		name   string
		g      ConvGeom
		bias   bool
		post   ConvPost
		layout ConvLayout
	}{
		{"3x3 pad 1", ConvGeom{N: 1, C: 16, H: 8, W: 8, O: 32, KH: 3, KW: 3, PadH: 1, PadW: 1}, true, PostRelu, 0},
		{"rgb stem", ConvGeom{N: 2, C: 3, H: 32, W: 32, O: 64, KH: 3, KW: 3, PadH: 1, PadW: 1}, false, PostRelu, DstNHWC},
		{"1x1 stride 2", ConvGeom{N: 1, C: 64, H: 8, W: 8, O: 128, KH: 1, KW: 1, StrideH: 2, StrideW: 2}, true, 0, SrcNHWC | DstNHWC},
		{"residual", ConvGeom{N: 2, C: 32, H: 8, W: 8, O: 32, KH: 3, KW: 3, PadH: 1, PadW: 1}, true, PostSum | PostRelu, SrcNHWC | DstNHWC},
		{"residual no relu", ConvGeom{N: 1, C: 16, H: 6, W: 6, O: 24, KH: 3, KW: 3, PadH: 1, PadW: 1}, false, PostSum, SrcNHWC},
		{"grouped dilated", ConvGeom{N: 1, C: 8, H: 9, W: 7, O: 8, KH: 3, KW: 3, PadH: 2, PadW: 2, DilationH: 2, DilationW: 2, Groups: 4}, false, 0, 0},
		{"patch embed", ConvGeom{N: 1, C: 3, H: 32, W: 32, O: 48, KH: 16, KW: 16, StrideH: 16, StrideW: 16}, true, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := fill(c.g.WeightLen())
			var b []float32
			if c.bias {
				b = fill(c.g.O)
			}
			pc := PackConv(c.g, w, c.bias, c.post, c.layout)
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
				addend := fill(g.OutputLen())
				if c.post&PostSum != 0 {
					for i := range want {
						want[i] += addend[i]
					}
				}
				if c.post&PostRelu != 0 {
					for i, v := range want {
						want[i] = max(v, 0)
					}
				}
				ohw := g.OutH() * g.OutW()
				xin, got := x, slices.Clone(addend)
				if c.layout&SrcNHWC != 0 {
					xin = make([]float32, len(x))
					NCHWToNHWC(xin, x, n, g.C, g.H*g.W)
				}
				if c.layout&DstNHWC != 0 {
					NCHWToNHWC(got, addend, n, g.O, ohw)
				}
				if !pc.Forward(g, xin, b, got, c.layout) {
					t.Fatalf("batch %d: Forward refused", n)
				}
				if c.layout&DstNHWC != 0 {
					nchw := make([]float32, len(got))
					NHWCToNCHW(nchw, got, n, g.O, ohw)
					got = nchw
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

// TestLayoutTransposes: NCHWToNHWC moves element (n, c, p) to n·hw·c + p·c
// + c, for shapes that are not multiples of the tile, and NHWCToNCHW
// undoes it.
func TestLayoutTransposes(t *testing.T) {
	for _, s := range [][3]int{{1, 3, 1}, {2, 17, 33}, {3, 64, 49}, {1, 1, 20}} {
		n, c, hw := s[0], s[1], s[2]
		src := make([]float32, n*c*hw)
		for i := range src {
			src[i] = float32(i)
		}
		nhwc := make([]float32, len(src))
		NCHWToNHWC(nhwc, src, n, c, hw)
		for img := range n {
			for ch := range c {
				for p := range hw {
					if got, want := nhwc[img*hw*c+p*c+ch], src[img*c*hw+ch*hw+p]; got != want {
						t.Fatalf("%v: NHWC[%d,%d,%d] = %g, want %g", s, img, p, ch, got, want)
					}
				}
			}
		}
		back := make([]float32, len(src))
		NHWCToNCHW(back, nhwc, n, c, hw)
		if !slices.Equal(back, src) {
			t.Fatalf("%v: NHWCToNCHW(NCHWToNHWC(x)) != x", s)
		}
	}
}
