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

func TestPoolingAgainstDirect(t *testing.T) {
	for ci, g := range poolCases {
		t.Run(fmt.Sprintf("%+v", g), func(t *testing.T) {
			if err := g.Validate(); err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(uint64(ci), 3))
			nx := g.N * g.C * g.H * g.W
			x := convRand(rng, nx)
			dy := convRand(rng, g.OutputLen())

			y := convRand(rng, g.OutputLen())
			arg := make([]int32, g.OutputLen())
			MaxPoolForward(g, x, y, arg)
			closeTo(t, "max", y, refPool(g, x, true), 0)
			hw := g.H * g.W
			for i, a := range arg {
				p := i / (g.OutH() * g.OutW())
				if x[p*hw+int(a)] != y[i] {
					t.Fatalf("argmax[%d]=%d points at %g, max is %g", i, a, x[p*hw+int(a)], y[i])
				}
			}
			// Backward: with distinct inputs, the gradient of sum(dy*y)
			// routes each dy to its argmax.
			dx := make([]float32, nx)
			MaxPoolBackward(g, dy, arg, dx)
			want := make([]float64, nx)
			for i, a := range arg {
				p := i / (g.OutH() * g.OutW())
				want[p*hw+int(a)] += float64(dy[i])
			}
			closeTo(t, "max dx", dx, want, 1e-6)

			AvgPoolForward(g, x, y)
			closeTo(t, "avg", y, refPool(g, x, false), 1e-5)
			// Average pool is linear: check backward as the adjoint,
			// <dy, A x> == <A^T dy, x>, on basis vectors of x.
			clear(dx)
			AvgPoolBackward(g, dy, dx)
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

func TestMaxPoolTiesAndNaN(t *testing.T) {
	g := PoolGeom{N: 1, C: 1, H: 2, W: 4, KH: 2, KW: 2, StrideH: 2, StrideW: 2}
	x := []float32{
		1, 1, 0, float32(math.NaN()),
		1, 1, 5, 7,
	}
	y := make([]float32, 2)
	arg := make([]int32, 2)
	MaxPoolForward(g, x, y, arg)
	if y[0] != 1 || arg[0] != 0 {
		t.Errorf("tie: got %g at %d, want 1 at 0 (first in window order)", y[0], arg[0])
	}
	if !math.IsNaN(float64(y[1])) || arg[1] != 3 {
		t.Errorf("NaN window: got %g at %d, want NaN at 3", y[1], arg[1])
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
	arg := make([]int32, g.OutputLen())
	b.ResetTimer()
	for range b.N {
		MaxPoolForward(g, x, y, arg)
	}
}
