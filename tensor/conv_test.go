package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// refConv is the textbook direct convolution in float64: the definition the
// fast kernels are checked against.
func refConv(g ConvGeom, x, w, b []float32) []float64 {
	g = g.norm()
	oh, ow := g.OutH(), g.OutW()
	cg, og := g.C/g.Groups, g.O/g.Groups
	y := make([]float64, g.N*g.O*oh*ow)
	for n := 0; n < g.N; n++ {
		for o := 0; o < g.O; o++ {
			gi := o / og
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					s := 0.0
					if b != nil {
						s = float64(b[o])
					}
					for c := 0; c < cg; c++ {
						for kh := 0; kh < g.KH; kh++ {
							for kw := 0; kw < g.KW; kw++ {
								ih := i*g.StrideH - g.PadH + kh*g.DilationH
								iw := j*g.StrideW - g.PadW + kw*g.DilationW
								if ih < 0 || ih >= g.H || iw < 0 || iw >= g.W {
									continue
								}
								xv := x[((n*g.C+gi*cg+c)*g.H+ih)*g.W+iw]
								wv := w[((o*cg+c)*g.KH+kh)*g.KW+kw]
								s += float64(xv) * float64(wv)
							}
						}
					}
					y[((n*g.O+o)*oh+i)*ow+j] = s
				}
			}
		}
	}
	return y
}

// refConvBackward differentiates refConv by its definition: every product
// x*w that fed y contributes dy*w to dx and dy*x to dw.
func refConvBackward(g ConvGeom, x, w, dy []float32) (dx, dw, db []float64) {
	g = g.norm()
	oh, ow := g.OutH(), g.OutW()
	cg, og := g.C/g.Groups, g.O/g.Groups
	dx = make([]float64, g.InputLen())
	dw = make([]float64, g.WeightLen())
	db = make([]float64, g.O)
	for n := 0; n < g.N; n++ {
		for o := 0; o < g.O; o++ {
			gi := o / og
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					d := float64(dy[((n*g.O+o)*oh+i)*ow+j])
					db[o] += d
					for c := 0; c < cg; c++ {
						for kh := 0; kh < g.KH; kh++ {
							for kw := 0; kw < g.KW; kw++ {
								ih := i*g.StrideH - g.PadH + kh*g.DilationH
								iw := j*g.StrideW - g.PadW + kw*g.DilationW
								if ih < 0 || ih >= g.H || iw < 0 || iw >= g.W {
									continue
								}
								xi := ((n*g.C+gi*cg+c)*g.H+ih)*g.W + iw
								wi := ((o*cg+c)*g.KH+kh)*g.KW + kw
								dx[xi] += d * float64(w[wi])
								dw[wi] += d * float64(x[xi])
							}
						}
					}
				}
			}
		}
	}
	return dx, dw, db
}

var convCases = []struct {
	name string
	g    ConvGeom
}{
	{"3x3 pad1", ConvGeom{N: 2, C: 3, H: 7, W: 6, O: 4, KH: 3, KW: 3, PadH: 1, PadW: 1}},
	{"3x3 stride2 pad1", ConvGeom{N: 2, C: 4, H: 9, W: 8, O: 6, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}},
	{"3x3 groups2", ConvGeom{N: 2, C: 4, H: 6, W: 6, O: 6, KH: 3, KW: 3, PadH: 1, PadW: 1, Groups: 2}},
	{"depthwise", ConvGeom{N: 2, C: 4, H: 6, W: 5, O: 4, KH: 3, KW: 3, PadH: 1, PadW: 1, Groups: 4}},
	{"dilation2", ConvGeom{N: 1, C: 3, H: 9, W: 9, O: 2, KH: 3, KW: 3, PadH: 2, PadW: 2, DilationH: 2, DilationW: 2}},
	{"1x1", ConvGeom{N: 2, C: 5, H: 4, W: 3, O: 3, KH: 1, KW: 1}},
	{"1x1 stride2", ConvGeom{N: 2, C: 4, H: 8, W: 8, O: 6, KH: 1, KW: 1, StrideH: 2, StrideW: 2}},
	{"7x7/2 stem", ConvGeom{N: 1, C: 3, H: 20, W: 18, O: 8, KH: 7, KW: 7, StrideH: 2, StrideW: 2, PadH: 3, PadW: 3}},
	{"3x1 asymmetric", ConvGeom{N: 2, C: 2, H: 7, W: 5, O: 3, KH: 3, KW: 1, StrideH: 2, StrideW: 1, PadH: 1}},
	{"no pad uneven", ConvGeom{N: 1, C: 2, H: 8, W: 7, O: 2, KH: 3, KW: 2, StrideH: 2, StrideW: 3}},
	{"16ch 3x3", ConvGeom{N: 3, C: 16, H: 8, W: 8, O: 32, KH: 3, KW: 3, PadH: 1, PadW: 1}},
}

func convRand(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

func closeTo(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) < len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i, w := range want {
		if d := math.Abs(float64(got[i]) - w); d > tol*(1+math.Abs(w)) || math.IsNaN(float64(got[i])) {
			t.Fatalf("%s[%d] = %g, want %g (diff %g)", what, i, got[i], w, d)
		}
	}
}

// convImpl is one way of running the three passes.
type convImpl struct {
	name string
	fwd  func(g ConvGeom, x, w, b, y []float32) bool
	bwdD func(g ConvGeom, dy, w, dx []float32, acc bool) bool
	bwdW func(g ConvGeom, x, dy, dw, db []float32, acc bool) bool
}

func convImpls(t *testing.T) []convImpl {
	impls := []convImpl{{
		name: "im2col",
		fwd:  func(g ConvGeom, x, w, b, y []float32) bool { convForwardGo(g, x, w, b, y); return true },
		bwdD: func(g ConvGeom, dy, w, dx []float32, acc bool) bool {
			convBackwardDataGo(g, dy, w, dx, acc)
			return true
		},
		bwdW: func(g ConvGeom, x, dy, dw, db []float32, acc bool) bool {
			convBackwardWeightsGo(g, x, dy, dw, db, acc)
			return true
		},
	}}
	if !dnnlState().ok {
		t.Logf("oneDNN path not tested: %s", ConvBackend())
		return impls
	}
	for _, blocked := range []bool{true, false} {
		name := "onednn-plain"
		if blocked {
			name = "onednn-blocked"
		}
		set := func() func() {
			old := dnnlBlocked
			dnnlBlocked = blocked
			return func() { dnnlBlocked = old }
		}
		impls = append(impls, convImpl{
			name: name,
			fwd: func(g ConvGeom, x, w, b, y []float32) bool {
				defer set()()
				return dnnlConvForward(g, x, w, b, y)
			},
			bwdD: func(g ConvGeom, dy, w, dx []float32, acc bool) bool {
				defer set()()
				return dnnlConvBackwardData(g, dy, w, dx, acc)
			},
			bwdW: func(g ConvGeom, x, dy, dw, db []float32, acc bool) bool {
				defer set()()
				return dnnlConvBackwardWeights(g, x, dy, dw, db, acc)
			},
		})
	}
	return impls
}

func TestConvAgainstDirect(t *testing.T) {
	for _, impl := range convImpls(t) {
		for ci, c := range convCases {
			for _, bias := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s/%s/bias=%v", impl.name, c.name, bias), func(t *testing.T) {
					g := c.g.norm()
					if err := g.Validate(); err != nil {
						t.Fatal(err)
					}
					rng := rand.New(rand.NewPCG(uint64(ci), 1))
					x := convRand(rng, g.InputLen())
					w := convRand(rng, g.WeightLen())
					dy := convRand(rng, g.OutputLen())
					var b []float32
					if bias {
						b = convRand(rng, g.O)
					}
					y := convRand(rng, g.OutputLen()) // garbage: must be overwritten
					if !impl.fwd(g, x, w, b, y) {
						t.Skipf("%s refused this shape", impl.name)
					}
					closeTo(t, "y", y, refConv(g, x, w, b), 1e-4)

					wdx, wdw, wdb := refConvBackward(g, x, w, dy)
					dx := convRand(rng, g.InputLen())
					if !impl.bwdD(g, dy, w, dx, false) {
						t.Fatalf("%s ran forward but refused backward data", impl.name)
					}
					closeTo(t, "dx", dx, wdx, 1e-4)
					// accumulate adds onto what is there
					if !impl.bwdD(g, dy, w, dx, true) {
						t.Fatal("refused accumulate")
					}
					for i := range wdx {
						wdx[i] *= 2
					}
					closeTo(t, "dx accumulated", dx, wdx, 1e-4)

					dw := convRand(rng, g.WeightLen())
					var db []float32
					if bias {
						db = convRand(rng, g.O)
					}
					if !impl.bwdW(g, x, dy, dw, db, false) {
						t.Fatalf("%s refused backward weights", impl.name)
					}
					closeTo(t, "dw", dw, wdw, 1e-4)
					if bias {
						closeTo(t, "db", db, wdb, 1e-4)
					}
					if !impl.bwdW(g, x, dy, dw, db, true) {
						t.Fatal("refused accumulate")
					}
					for i := range wdw {
						wdw[i] *= 2
					}
					closeTo(t, "dw accumulated", dw, wdw, 1e-4)
					if bias {
						for i := range wdb {
							wdb[i] *= 2
						}
						closeTo(t, "db accumulated", db, wdb, 1e-4)
					}
				})
			}
		}
	}
}

// TestConvPathsAgree runs the public entry points on the selected backend
// and the Go fallback on a ResNet-like shape and compares them directly.
func TestConvPathsAgree(t *testing.T) {
	g := ConvGeom{N: 4, C: 16, H: 16, W: 16, O: 32, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}.norm()
	rng := rand.New(rand.NewPCG(9, 9))
	x := convRand(rng, g.InputLen())
	w := convRand(rng, g.WeightLen())
	b := convRand(rng, g.O)
	dy := convRand(rng, g.OutputLen())

	y1, y2 := make([]float32, g.OutputLen()), make([]float32, g.OutputLen())
	ConvForward(g, x, w, b, y1)
	convForwardGo(g, x, w, b, y2)
	dx1, dx2 := make([]float32, g.InputLen()), make([]float32, g.InputLen())
	ConvBackwardData(g, dy, w, dx1, false)
	convBackwardDataGo(g, dy, w, dx2, false)
	dw1, dw2 := make([]float32, g.WeightLen()), make([]float32, g.WeightLen())
	db1, db2 := make([]float32, g.O), make([]float32, g.O)
	ConvBackwardWeights(g, x, dy, dw1, db1, false)
	convBackwardWeightsGo(g, x, dy, dw2, db2, false)
	for _, c := range []struct {
		name string
		a, b []float32
	}{{"y", y1, y2}, {"dx", dx1, dx2}, {"dw", dw1, dw2}, {"db", db1, db2}} {
		want := make([]float64, len(c.b))
		for i, v := range c.b {
			want[i] = float64(v)
		}
		closeTo(t, c.name, c.a, want, 1e-4)
	}
	t.Logf("backend: %s", ConvBackend())
}

func TestConvGeomValidate(t *testing.T) {
	bad := []ConvGeom{
		{N: 1, C: 3, H: 4, W: 4, O: 4, KH: 3, KW: 3, Groups: 2},    // 3 channels into 2 groups
		{N: 1, C: 4, H: 2, W: 2, O: 4, KH: 3, KW: 3},               // kernel larger than input
		{N: 1, C: 4, H: 4, W: 4, O: 4, KH: 3, KW: 3, PadH: -1},     // negative pad
		{N: 0, C: 4, H: 4, W: 4, O: 4, KH: 3, KW: 3},               // empty batch
		{N: 1, C: 4, H: 4, W: 4, O: 4, KH: 3, KW: 3, StrideH: -2},  // negative stride
		{N: 1, C: 4, H: 9, W: 9, O: 4, KH: 3, KW: 3, DilationH: 5}, // dilated kernel too tall
	}
	for _, g := range bad {
		if err := g.Validate(); err == nil {
			t.Errorf("%+v: accepted", g)
		} else if !strings.HasPrefix(err.Error(), "conv: ") {
			t.Errorf("%+v: error %q lacks the conv prefix", g, err)
		}
	}
	ok := ConvGeom{N: 1, C: 4, H: 9, W: 9, O: 4, KH: 3, KW: 3, DilationH: 4}
	if err := ok.Validate(); err != nil {
		t.Errorf("%+v: %v", ok, err)
	}
	if got := ok.OutH(); got != 1 {
		t.Errorf("OutH = %d, want 1", got)
	}
}

func TestConvBackendName(t *testing.T) {
	name := ConvBackend()
	if !strings.HasPrefix(name, "onednn 2.") && !strings.HasPrefix(name, "im2col+sgemm") {
		t.Fatalf("ConvBackend() = %q", name)
	}
	t.Log(name)
}

// TestConvConcurrent runs convolutions of several shapes from several
// goroutines at once: the plan cache and the shared arena must hold up,
// and each result must still be right.
func TestConvConcurrent(t *testing.T) {
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			c := convCases[i%len(convCases)]
			g := c.g.norm()
			rng := rand.New(rand.NewPCG(uint64(i), 77))
			x, w := convRand(rng, g.InputLen()), convRand(rng, g.WeightLen())
			want := refConv(g, x, w, nil)
			y := make([]float32, g.OutputLen())
			for range 5 {
				ConvForward(g, x, w, nil, y)
				for j, v := range want {
					if math.Abs(float64(y[j])-v) > 1e-4*(1+math.Abs(v)) {
						errs <- fmt.Errorf("%s: y[%d] = %g, want %g", c.name, j, y[j], v)
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
