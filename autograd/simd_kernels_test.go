package autograd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sslzoo/sslzoo/tensor"
)

// BatchNorm, ReLU and Add at sizes that take the vectorised tensor kernels
// (cgo builds), against float64 formulas. Each input reaches the op through
// MulScalar(p, 1), so its gradient buffer is fresh (the kernels write it);
// the "shared" cases also add x to the output, so the op's backward finds
// gradient already there and must accumulate.

func simdTestRand(rng *rand.Rand, shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	for i := range t.Data {
		t.Data[i] = float32(rng.NormFloat64())
	}
	return t
}

func checkClose(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	for i := range want {
		if math.Abs(float64(got[i])-want[i]) > tol*(1+math.Abs(want[i])) {
			t.Fatalf("%s[%d] = %v, want %v", what, i, got[i], want[i])
		}
	}
}

func TestBatchNormKernelsLarge(t *testing.T) {
	const n, c, h, w = 3, 8, 11, 13
	const eps = 1e-5
	m := n * h * w
	// Both schedules: all channels per pass, and channel by channel.
	defer func(v int) { bnFuseMin = v }(bnFuseMin)
	for _, fuse := range []int{bnFuseMin, 1} {
		bnFuseMin = fuse
		testBatchNormKernels(t, n, c, h, w, m, eps)
	}
}

func testBatchNormKernels(t *testing.T, n, c, h, w, m int, eps float64) {
	s := h * w
	for _, training := range []bool{true, false} {
		for _, shared := range []bool{false, true} {
			rng := rand.New(rand.NewPCG(11, 12))
			xv := simdTestRand(rng, n, c, h, w)
			for i := range xv.Data {
				xv.Data[i] = 2 + 3*xv.Data[i]
			}
			wv, bv := simdTestRand(rng, c), simdTestRand(rng, c)
			rm, rv := simdTestRand(rng, c), tensor.New(c)
			for i := range rv.Data {
				rv.Data[i] = 0.5 + rng.Float32()
			}
			seed := simdTestRand(rng, n, c, h, w)

			tp := NewTape()
			p, wp, bp := NewParam("x", xv), NewParam("w", wv), NewParam("b", bv)
			x := tp.MulScalar(p, 1)
			y := tp.BatchNorm(x, wp, bp, rm.Clone(), rv.Clone(), training, 0.1, float32(eps))
			z := y
			if shared {
				z = tp.Add(y, x)
			}
			if err := tp.BackwardWith(z, seed); err != nil {
				t.Fatal(err)
			}

			wantY := make([]float64, n*c*s)
			wantGX := make([]float64, n*c*s)
			wantGW, wantGB := make([]float64, c), make([]float64, c)
			for ch := 0; ch < c; ch++ {
				var mu, v float64
				if training {
					for i := 0; i < n; i++ {
						for j := 0; j < s; j++ {
							mu += float64(xv.Data[(i*c+ch)*s+j])
						}
					}
					mu /= float64(m)
					for i := 0; i < n; i++ {
						for j := 0; j < s; j++ {
							d := float64(xv.Data[(i*c+ch)*s+j]) - mu
							v += d * d
						}
					}
					v /= float64(m)
				} else {
					mu, v = float64(rm.Data[ch]), float64(rv.Data[ch])
				}
				r := 1 / math.Sqrt(v+eps)
				var sdy, sdyx float64
				for i := 0; i < n; i++ {
					for j := 0; j < s; j++ {
						k := (i*c+ch)*s + j
						xh := (float64(xv.Data[k]) - mu) * r
						wantY[k] = xh*float64(wv.Data[ch]) + float64(bv.Data[ch])
						sdy += float64(seed.Data[k])
						sdyx += float64(seed.Data[k]) * xh
					}
				}
				wantGW[ch], wantGB[ch] = sdyx, sdy
				for i := 0; i < n; i++ {
					for j := 0; j < s; j++ {
						k := (i*c+ch)*s + j
						g := float64(seed.Data[k])
						if training {
							xh := (float64(xv.Data[k]) - mu) * r
							wantGX[k] = float64(wv.Data[ch]) * r / float64(m) * (float64(m)*g - sdy - xh*sdyx)
						} else {
							wantGX[k] = g * float64(wv.Data[ch]) * r
						}
						if shared {
							wantGX[k] += g
						}
					}
				}
			}
			name := fmt.Sprintf("fuse %d %s", bnFuseMin, map[bool]string{true: "train", false: "eval"}[training])
			if shared {
				name += " shared"
			}
			checkClose(t, name+" y", y.Value.Data, wantY, 1e-5)
			checkClose(t, name+" dx", p.Grad.Data, wantGX, 1e-4)
			checkClose(t, name+" dweight", wp.Grad.Data, wantGW, 1e-4)
			checkClose(t, name+" dbias", bp.Grad.Data, wantGB, 1e-4)
		}
	}
}

func TestReLUAddKernelsLarge(t *testing.T) {
	const size = 4099 // odd, above the cgo threshold
	for _, shared := range []bool{false, true} {
		rng := rand.New(rand.NewPCG(13, 14))
		xv, bv, seed := simdTestRand(rng, size), simdTestRand(rng, size), simdTestRand(rng, size)
		xv.Data[5] = float32(math.NaN())
		xv.Data[6] = float32(math.Copysign(0, -1))
		tp := NewTape()
		p, q := NewParam("x", xv), NewParam("b", bv)
		x := tp.MulScalar(p, 1)
		y := tp.ReLU(x)
		z := tp.Add(y, q)
		if shared {
			z = tp.Add(z, x)
		}
		if err := tp.BackwardWith(z, seed); err != nil {
			t.Fatal(err)
		}
		for i, v := range xv.Data {
			wantY := math.Max(float64(v), 0)
			wantG := 0.0
			if v > 0 {
				wantG = float64(seed.Data[i])
			}
			if shared {
				wantG += float64(seed.Data[i])
			}
			switch {
			case i == 5:
				if !math.IsNaN(float64(y.Value.Data[i])) || !math.IsNaN(float64(z.Value.Data[i])) {
					t.Fatalf("NaN input gave ReLU %v, sum %v", y.Value.Data[i], z.Value.Data[i])
				}
			case float64(y.Value.Data[i]) != wantY || math.Signbit(float64(y.Value.Data[i])):
				t.Fatalf("relu(%v) = %v", v, y.Value.Data[i])
			}
			if i != 5 && z.Value.Data[i] != y.Value.Data[i]+bv.Data[i]+map[bool]float32{true: v, false: 0}[shared] {
				t.Fatalf("sum[%d] = %v", i, z.Value.Data[i])
			}
			if float64(p.Grad.Data[i]) != wantG {
				t.Fatalf("shared=%v: dx[%d] = %v, want %v (x=%v)", shared, i, p.Grad.Data[i], wantG, v)
			}
			if q.Grad.Data[i] != seed.Data[i] {
				t.Fatalf("db[%d] = %v, want %v", i, q.Grad.Data[i], seed.Data[i])
			}
		}
	}
}
