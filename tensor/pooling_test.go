package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// refPool computes max or average pooling by the definition: a window over
// the zero/-inf padded input.
func refPool(g PoolGeom, x []float32, isMax bool) []float64 {
	oh, ow := g.OutH(), g.OutW()
	y := make([]float64, g.OutputLen())
	for p := 0; p < g.N*g.C; p++ {
		for i := 0; i < oh; i++ {
			for j := 0; j < ow; j++ {
				acc := 0.0
				if isMax {
					acc = math.Inf(-1)
				}
				for kh := 0; kh < g.KH; kh++ {
					for kw := 0; kw < g.KW; kw++ {
						h, w := i*g.StrideH-g.PadH+kh, j*g.StrideW-g.PadW+kw
						if h < 0 || h >= g.H || w < 0 || w >= g.W {
							continue // padding: -inf for max, 0 for the sum
						}
						v := float64(x[(p*g.H+h)*g.W+w])
						if isMax {
							acc = math.Max(acc, v)
						} else {
							acc += v
						}
					}
				}
				if !isMax {
					acc /= float64(g.KH * g.KW)
				}
				y[(p*oh+i)*ow+j] = acc
			}
		}
	}
	return y
}

var poolCases = []PoolGeom{
	{N: 2, C: 3, H: 6, W: 6, KH: 2, KW: 2, StrideH: 2, StrideW: 2},
	{N: 1, C: 2, H: 9, W: 8, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}, // ResNet stem maxpool
	{N: 2, C: 2, H: 5, W: 7, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
	{N: 1, C: 1, H: 7, W: 5, KH: 3, KW: 2, StrideH: 3, StrideW: 1, PadH: 1},
	{N: 1, C: 4, H: 4, W: 4, KH: 4, KW: 4, StrideH: 4, StrideW: 4},
}

// poolImpl is one way of running the pools: the public entry points (on
// oneDNN when it is loaded) or the Go loops.
type poolImpl struct {
	name    string
	maxFwd  func(g PoolGeom, x, y, ws []float32)
	maxBwd  func(g PoolGeom, dy, ws, dx []float32) // accumulates
	avgFwd  func(g PoolGeom, x, y []float32)
	avgBwd  func(g PoolGeom, dy, dx []float32) // accumulates
	argmaxG bool                               // ws holds Go argmax positions
}

func poolImpls(t *testing.T) []poolImpl {
	impls := []poolImpl{{
		name:    "go",
		maxFwd:  func(g PoolGeom, x, y, ws []float32) { maxPoolForwardGo(g, x, y, int32View(ws)) },
		maxBwd:  func(g PoolGeom, dy, ws, dx []float32) { maxPoolBackwardGo(g, dy, int32View(ws), dx) },
		avgFwd:  avgPoolForwardGo,
		avgBwd:  avgPoolBackwardGo,
		argmaxG: true,
	}}
	if !dnnlState().ok {
		t.Logf("oneDNN pooling not tested: %s", ConvBackend())
		return impls
	}
	return append(impls, poolImpl{
		name:   "selected",
		maxFwd: MaxPoolForward,
		maxBwd: func(g PoolGeom, dy, ws, dx []float32) { MaxPoolBackward(g, dy, ws, dx, true) },
		avgFwd: AvgPoolForward,
		avgBwd: func(g PoolGeom, dy, dx []float32) { AvgPoolBackward(g, dy, dx, true) },
	})
}

func TestPoolingAgainstDirect(t *testing.T) {
	for _, impl := range poolImpls(t) {
		for ci, g := range poolCases {
			t.Run(fmt.Sprintf("%s/%+v", impl.name, g), func(t *testing.T) {
				if err := g.Validate(); err != nil {
					t.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(uint64(ci), 3))
				nx := g.N * g.C * g.H * g.W
				x := convRand(rng, nx)
				dy := convRand(rng, g.OutputLen())

				y := convRand(rng, g.OutputLen())
				ws := make([]float32, MaxPoolWorkspaceLen(g))
				impl.maxFwd(g, x, y, ws)
				closeTo(t, "max", y, refPool(g, x, true), 0)
				// Backward: with distinct inputs, the gradient of sum(dy*y)
				// goes to the position of each window's maximum.
				want := make([]float64, nx)
				hw, ohw := g.H*g.W, g.OutH()*g.OutW()
				for i, v := range y {
					p := i / ohw
					at := -1
					for k, e := range x[p*hw : (p+1)*hw] {
						if e == v {
							at = k
						}
					}
					if impl.argmaxG && int(int32View(ws)[i]) != at {
						t.Fatalf("argmax[%d] = %d, want %d", i, int32View(ws)[i], at)
					}
					want[p*hw+at] += float64(dy[i])
				}
				dx := make([]float32, nx)
				impl.maxBwd(g, dy, ws, dx)
				closeTo(t, "max dx", dx, want, 1e-6)
				// accumulating adds on top
				impl.maxBwd(g, dy, ws, dx)
				for i := range want {
					want[i] *= 2
				}
				closeTo(t, "max dx accumulated", dx, want, 1e-6)

				impl.avgFwd(g, x, y)
				closeTo(t, "avg", y, refPool(g, x, false), 1e-5)
				// Average pool is linear: check backward as the adjoint,
				// <dy, A x> == <A^T dy, x>, on basis vectors of x.
				clear(dx)
				impl.avgBwd(g, dy, dx)
				e := make([]float32, nx)
				for k := 0; k < nx; k++ {
					e[k] = 1
					col := refPool(g, e, false)
					e[k] = 0
					s := 0.0
					for i, v := range col {
						s += v * float64(dy[i])
					}
					if math.Abs(s-float64(dx[k])) > 1e-5 {
						t.Fatalf("avg dx[%d] = %g, want %g", k, dx[k], s)
					}
				}
			})
		}
	}
}

// TestPoolBackwardOverwrites checks accumulate=false on the public entry
// points: stale contents of dx must not survive.
func TestPoolBackwardOverwrites(t *testing.T) {
	g := poolCases[1]
	rng := rand.New(rand.NewPCG(4, 4))
	nx := g.N * g.C * g.H * g.W
	x, dy := convRand(rng, nx), convRand(rng, g.OutputLen())
	y, ws := make([]float32, g.OutputLen()), make([]float32, MaxPoolWorkspaceLen(g))
	MaxPoolForward(g, x, y, ws)
	fresh, stale := make([]float32, nx), convRand(rng, nx)
	MaxPoolBackward(g, dy, ws, fresh, false)
	MaxPoolBackward(g, dy, ws, stale, false)
	for i := range fresh {
		if fresh[i] != stale[i] {
			t.Fatalf("max: dx[%d] = %g over stale data, %g over zeros", i, stale[i], fresh[i])
		}
	}
	stale = convRand(rng, nx)
	AvgPoolBackward(g, dy, fresh, false)
	AvgPoolBackward(g, dy, stale, false)
	for i := range fresh {
		if fresh[i] != stale[i] {
			t.Fatalf("avg: dx[%d] = %g over stale data, %g over zeros", i, stale[i], fresh[i])
		}
	}
}

func TestMaxPoolTiesAndNaN(t *testing.T) {
	g := PoolGeom{N: 1, C: 1, H: 2, W: 4, KH: 2, KW: 2, StrideH: 2, StrideW: 2}
	x := []float32{
		1, 1, 0, float32(math.NaN()),
		1, 1, 5, 7,
	}
	for _, impl := range poolImpls(t) {
		y := make([]float32, 2)
		ws := make([]float32, MaxPoolWorkspaceLen(g))
		impl.maxFwd(g, x, y, ws)
		dx := make([]float32, 8)
		impl.maxBwd(g, []float32{1, 1}, ws, dx)
		// The tie's gradient goes to the first 1 in window order.
		if y[0] != 1 || dx[0] != 1 || dx[1]+dx[4]+dx[5] != 0 {
			t.Errorf("%s: tie window gave %g with dx %v, want 1 with the gradient at 0", impl.name, y[0], dx[:6])
		}
		if impl.argmaxG {
			if !math.IsNaN(float64(y[1])) || dx[3] != 1 {
				t.Errorf("%s: NaN window gave %g with dx %v, want NaN with the gradient at 3", impl.name, y[1], dx)
			}
		} else {
			t.Logf("%s: NaN window gave %g, dx %v", impl.name, y[1], dx)
		}
	}
}

func TestGlobalAvgPool(t *testing.T) {
	x := []float32{1, 2, 3, 4, 10, 20, 30, 40}
	y := make([]float32, 2)
	GlobalAvgPoolForward(2, 4, x, y)
	if y[0] != 2.5 || y[1] != 25 {
		t.Fatalf("got %v, want [2.5 25]", y)
	}
	dx := []float32{1, 1, 1, 1, 0, 0, 0, 0}
	GlobalAvgPoolBackward(2, 4, []float32{4, -8}, dx)
	want := []float32{2, 2, 2, 2, -2, -2, -2, -2}
	for i := range want {
		if dx[i] != want[i] {
			t.Fatalf("dx = %v, want %v", dx, want)
		}
	}
}

func TestPoolGeomValidate(t *testing.T) {
	for _, g := range []PoolGeom{
		{N: 1, C: 1, H: 4, W: 4, KH: 2, KW: 2, StrideH: 1, StrideW: 1, PadH: 2}, // pad > k/2
		{N: 1, C: 1, H: 2, W: 2, KH: 3, KW: 3, StrideH: 1, StrideW: 1},          // kernel too big
		{N: 1, C: 1, H: 4, W: 4, KH: 2, KW: 2, StrideH: 0, StrideW: 1},          // zero stride
		{N: 0, C: 1, H: 4, W: 4, KH: 2, KW: 2, StrideH: 1, StrideW: 1},          // empty
	} {
		if g.Validate() == nil {
			t.Errorf("%+v: accepted", g)
		}
	}
}

// BenchmarkMaxPoolForward is the ImageNet-stem pool (3x3, stride 2, pad 1)
// on a [64,64,32,32] activation.
func BenchmarkMaxPoolForward(b *testing.B) {
	g := PoolGeom{N: 64, C: 64, H: 32, W: 32, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}
	rng := rand.New(rand.NewPCG(1, 1))
	x := convRand(rng, g.N*g.C*g.H*g.W)
	y := make([]float32, g.OutputLen())
	ws := make([]float32, MaxPoolWorkspaceLen(g))
	for _, impl := range poolImpls(&testing.T{}) {
		b.Run(impl.name, func(b *testing.B) {
			for range b.N {
				impl.maxFwd(g, x, y, ws)
			}
		})
	}
}
