package autograd

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sslzoo/sslzoo/tensor"
)

// TestVectorGELUMatchesGo: tensor.GELUTable gives gelu32's bits, including
// at the table's ends, ±Inf and NaN.
func TestVectorGELUMatchesGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, 4096)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * 4)
	}
	copy(x, []float32{geluLo, geluHi, geluLo - 1e-6, geluHi + 1e-6, 0, float32(math.Copysign(0, -1)),
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 6.0, -6.0, 1e30, -1e30})
	o := make([]float32, len(x))
	if !tensor.GELUTable(o, x, geluTabFlat, geluIntervals, geluLo, geluHi) {
		t.Skip("built without the C kernels")
	}
	for i, v := range x {
		if want := gelu32(v); math.Float32bits(o[i]) != math.Float32bits(want) && !(want != want && o[i] != o[i]) {
			t.Fatalf("gelu(%g) = %g, gelu32 gives %g", v, o[i], want)
		}
	}
}

// TestVectorSoftmaxMatchesGo: tensor.SoftmaxRows agrees with softmaxRow to
// a few ulps (only the row sum's order differs).
func TestVectorSoftmaxMatchesGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	const rows, n = 40, 197
	x := make([]float32, rows*n)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * 8)
	}
	x[5] = float32(math.Inf(-1)) // a masked entry
	for i := n; i < 2*n; i++ {
		x[i] = float32(math.Inf(-1)) // a fully masked row: NaN, as in Go
	}
	o := make([]float32, len(x))
	if !tensor.SoftmaxRows(o, x, n) {
		t.Skip("built without the C kernels")
	}
	want := make([]float32, n)
	for r := range rows {
		softmaxRow(want, x[r*n:(r+1)*n], false)
		for i, w := range want {
			got := o[r*n+i]
			if w != w {
				if got == got {
					t.Fatalf("row %d [%d]: %g, want NaN", r, i, got)
				}
				continue
			}
			if math.Abs(float64(got-w)) > 4e-7*float64(w)+1e-30 {
				t.Fatalf("row %d [%d]: %g, softmaxRow gives %g", r, i, got, w)
			}
		}
	}
}

// TestVectorLayerNormMatchesFloat64: tensor.LayerNormRows agrees with a
// float64 layer norm to float32 rounding, with and without each of the
// affine weights, on rows a whole number of vectors long and not, and
// fills the per-row statistics the backward pass reads.
func TestVectorLayerNormMatchesFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	const rows, eps = 23, 1e-6
	for _, d := range []int{192, 197} {
		x, w, b := make([]float32, rows*d), make([]float32, d), make([]float32, d)
		for i := range x {
			x[i] = float32(rng.NormFloat64()*3 + 5) // an offset mean, as activations have
		}
		for i := range w {
			w[i], b[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
		}
		for _, c := range []struct{ w, b []float32 }{{w, b}, {w, nil}, {nil, b}, {nil, nil}} {
			o, stats := make([]float32, len(x)), make([]float32, 2*rows)
			if !tensor.LayerNormRows(o, x, d, c.w, c.b, eps, stats) {
				t.Skip("built without the C kernels")
			}
			for r := range rows {
				xr := x[r*d : (r+1)*d]
				var mean, v float64
				for _, e := range xr {
					mean += float64(e)
				}
				mean /= float64(d)
				for _, e := range xr {
					v += (float64(e) - mean) * (float64(e) - mean)
				}
				rstd := 1 / math.Sqrt(v/float64(d)+eps)
				if math.Abs(float64(stats[2*r])-mean) > 1e-6*math.Abs(mean) || math.Abs(float64(stats[2*r+1])-rstd) > 1e-6*rstd {
					t.Fatalf("d %d row %d: stats %v, want mean %g 1/std %g", d, r, stats[2*r:2*r+2], mean, rstd)
				}
				for i, e := range xr {
					want := (float64(e) - mean) * rstd
					if c.w != nil {
						want *= float64(c.w[i])
					}
					if c.b != nil {
						want += float64(c.b[i])
					}
					if got := float64(o[r*d+i]); math.Abs(got-want) > 2e-6*(1+math.Abs(want)) {
						t.Fatalf("d %d row %d [%d] (w %v, b %v): %g, want %g", d, r, i, c.w != nil, c.b != nil, got, want)
					}
				}
			}
		}
	}
}
