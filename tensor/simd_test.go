package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The C kernels (cgo builds) must give the same element-wise bits as the Go
// fallbacks, and sums equal to rounding; the Go fallbacks are checked
// against float64 references. Lengths cover the empty slice, tails shorter
// than one vector, one vector plus one, and a long odd length.

var simdLengths = []int{0, 1, 15, 17, 1000003}

func simdRand(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// withSpecials plants NaN (both signs), ±0 and ±Inf at the start of x.
func withSpecials(x []float32) []float32 {
	specials := []float32{
		float32(math.NaN()), math.Float32frombits(0xffc00001), 0, float32(math.Copysign(0, -1)),
		float32(math.Inf(1)), float32(math.Inf(-1)), math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32,
	}
	copy(x, specials)
	return x
}

func simdSameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: length %d, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: element %d of %d is %v (%#x), want %v (%#x)", what, i, len(got), got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

func needSIMD(t *testing.T) {
	if !haveSIMD {
		t.Skip("built without cgo: no C kernels to compare")
	}
}

func TestReLUGoReference(t *testing.T) {
	x := withSpecials(make([]float32, 10))
	x[8], x[9] = 2.5, -2.5
	o := make([]float32, len(x))
	reluGo(o, x)
	for i, v := range x {
		var want float32
		switch {
		case v != v:
			if math.Float32bits(o[i]) != math.Float32bits(v) {
				t.Errorf("relu(NaN %#x) = %#x, want the same NaN", math.Float32bits(v), math.Float32bits(o[i]))
			}
			continue
		case v > 0:
			want = v
		}
		if math.Float32bits(o[i]) != math.Float32bits(want) {
			t.Errorf("relu(%v) = %v (%#x), want %v", v, o[i], math.Float32bits(o[i]), want)
		}
	}
	g := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	gx := make([]float32, len(x))
	reluGradGo(gx, g, o, false)
	for i := range gx {
		want := float32(0)
		if o[i] > 0 {
			want = g[i]
		}
		if gx[i] != want {
			t.Errorf("relu grad at output %v = %v, want %v", o[i], gx[i], want)
		}
	}
}

func TestSIMDReLU(t *testing.T) {
	needSIMD(t)
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range simdLengths {
		x := simdRand(r, n)
		if n >= 8 {
			withSpecials(x)
		}
		got, want := make([]float32, n), make([]float32, n)
		reluC(got, x)
		reluGo(want, x)
		simdSameBits(t, "relu", got, want)

		g := simdRand(r, n)
		for _, acc := range []bool{false, true} {
			gotG, wantG := simdRand(r, n), make([]float32, n)
			copy(wantG, gotG)
			reluGradC(gotG, g, want, acc)
			reluGradGo(wantG, g, want, acc)
			simdSameBits(t, "relu grad", gotG, wantG)
		}
		// The exported entry points (Go below simdMin, C above) agree too.
		ReLU(got, x)
		simdSameBits(t, "ReLU", got, want)
	}
}

func TestSIMDAdd(t *testing.T) {
	needSIMD(t)
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range simdLengths {
		a, b := simdRand(r, n), simdRand(r, n)
		if n >= 8 {
			withSpecials(a)
		}
		got, want := make([]float32, n), make([]float32, n)
		addC(got, a, b)
		addGo(want, a, b)
		simdSameBits(t, "add", got, want)

		addScalarC(got, a, 0.375)
		addScalarGo(want, a, 0.375)
		simdSameBits(t, "add scalar", got, want)

		copy(got, a)
		copy(want, a)
		addToC(got, b)
		addToGo(want, b)
		simdSameBits(t, "add to", got, want)
	}
}

func TestSIMDSGD(t *testing.T) {
	needSIMD(t)
	r := rand.New(rand.NewPCG(5, 6))
	cfgs := []struct {
		wd, mom, damp   float32
		nesterov, fresh bool
	}{
		{0, 0, 0, false, false},
		{5e-4, 0, 0, false, false},
		{5e-4, 0.9, 0, false, true},
		{5e-4, 0.9, 0, false, false},
		{1e-4, 0.9, 0.1, true, false},
		{0, 0.9, 0, true, true},
	}
	for _, n := range simdLengths {
		g := simdRand(r, n)
		for _, c := range cfgs {
			w1, b1 := simdRand(r, n), simdRand(r, n)
			w2, b2 := append([]float32(nil), w1...), append([]float32(nil), b1...)
			sgdC(w1, g, b1, 0.1, c.wd, c.mom, c.damp, c.nesterov, c.fresh)
			sgdGo(w2, g, b2, 0.1, c.wd, c.mom, c.damp, c.nesterov, c.fresh)
			simdSameBits(t, "sgd weights", w1, w2)
			simdSameBits(t, "sgd momentum", b1, b2)
		}
	}
}

// bnShapes are [n, c, s] layouts: runs shorter than a vector, odd runs, a
// run of 1 ([N,C] batch norm) and one long run.
var bnShapes = [][3]int{{1, 1, 1}, {2, 3, 15}, {3, 5, 17}, {7, 4, 1}, {2, 3, 100}, {1, 2, 1000003}, {4, 6, 0}}

func simdClose(a, b, tol float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= tol*(1+math.Abs(b))
}

func TestBNStatsGoReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	// The second shape's runs span several accumulation blocks.
	for _, sh := range [][3]int{{3, 4, 19}, {2, 2, 50001}} {
		testBNStatsReference(t, r, sh[0], sh[1], sh[2])
	}
}

func testBNStatsReference(t *testing.T, r *rand.Rand, n, c, s int) {
	x := simdRand(r, n*c*s)
	for i := range x {
		x[i] = 3 + 2*x[i] // an offset mean tests the two-pass variance
	}
	mean, v := make([]float64, c), make([]float64, c)
	bnStatsGo(x, n, c, s, 0, c, mean, v)
	for ch := 0; ch < c; ch++ {
		var sum, sq float64
		for i := 0; i < n; i++ {
			for _, e := range x[(i*c+ch)*s : (i*c+ch+1)*s] {
				sum += float64(e)
			}
		}
		mu := sum / float64(n*s)
		for i := 0; i < n; i++ {
			for _, e := range x[(i*c+ch)*s : (i*c+ch+1)*s] {
				sq += (float64(e) - mu) * (float64(e) - mu)
			}
		}
		if !simdClose(mean[ch], mu, 1e-6) || !simdClose(v[ch], sq/float64(n*s), 1e-5) {
			t.Errorf("[%d %d %d] channel %d: mean %v var %v, want %v %v", n, c, s, ch, mean[ch], v[ch], mu, sq/float64(n*s))
		}
	}
}

func TestSIMDBatchNorm(t *testing.T) {
	needSIMD(t)
	r := rand.New(rand.NewPCG(9, 10))
	for _, sh := range bnShapes {
		n, c, s := sh[0], sh[1], sh[2]
		total := n * c * s
		x, dy := simdRand(r, total), simdRand(r, total)
		for i := range x {
			x[i] = 1.5 + 3*x[i]
		}
		// A sub-range of channels: the kernels must leave the rest alone.
		lo, hi := 0, c
		if c > 2 {
			lo, hi = 1, c-1
		}
		sentinel := func(m int) []float64 {
			v := make([]float64, m)
			for i := range v {
				v[i] = -7
			}
			return v
		}
		m1, v1, m2, v2 := sentinel(c), sentinel(c), sentinel(c), sentinel(c)
		bnStatsC(x, n, c, s, lo, hi, m1, v1)
		bnStatsGo(x, n, c, s, lo, hi, m2, v2)
		for ch := 0; ch < c; ch++ {
			if !simdClose(m1[ch], m2[ch], 1e-6) || !simdClose(v1[ch], v2[ch], 1e-5) {
				t.Fatalf("%v channel %d: C mean/var %v %v, Go %v %v", sh, ch, m1[ch], v1[ch], m2[ch], v2[ch])
			}
		}

		scale, shift, mean32 := simdRand(r, c), simdRand(r, c), simdRand(r, c)
		o1, o2 := simdRand(r, total), make([]float32, total)
		copy(o2, o1)
		bnApplyC(o1, x, n, c, s, lo, hi, scale, shift)
		bnApplyGo(o2, x, n, c, s, lo, hi, scale, shift)
		simdSameBits(t, "bn apply", o1, o2)

		a1, b1, a2, b2 := sentinel(c), sentinel(c), sentinel(c), sentinel(c)
		bnDotsC(dy, x, n, c, s, lo, hi, mean32, a1, b1)
		bnDotsGo(dy, x, n, c, s, lo, hi, mean32, a2, b2)
		for ch := 0; ch < c; ch++ {
			// Sums of random-sign terms: compare against their magnitude.
			if math.Abs(a1[ch]-a2[ch]) > 1e-5*float64(n*s+1) || math.Abs(b1[ch]-b2[ch]) > 1e-5*float64(n*s+1)*4 {
				t.Fatalf("%v channel %d: C dots %v %v, Go %v %v", sh, ch, a1[ch], b1[ch], a2[ch], b2[ch])
			}
		}

		k, md, c2 := simdRand(r, c), simdRand(r, c), simdRand(r, c)
		for _, acc := range []bool{false, true} {
			for _, eval := range []bool{false, true} {
				cc := c2
				if eval {
					cc = nil
				}
				g1, g2 := simdRand(r, total), make([]float32, total)
				copy(g2, g1)
				bnInputGradC(g1, dy, x, n, c, s, lo, hi, k, md, cc, mean32, acc)
				bnInputGradGo(g2, dy, x, n, c, s, lo, hi, k, md, cc, mean32, acc)
				simdSameBits(t, "bn input grad", g1, g2)
			}
		}
	}
}

// TestSIMDHardSwish: the C kernel gives the Go loop's bits (NaN for NaN,
// whichever payload), and the Go loop is the four ONNX ops in float32.
func TestSIMDHardSwish(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	x := withSpecials(simdRand(r, 1000003))
	for i := 8; i < 64; i++ {
		x[i] = float32(i-36) / 4 // the bends at -3 and 3, exactly
	}
	want := make([]float32, len(x))
	hardSwishGo(want, x)
	for i, v := range x[:4096] {
		t32 := v + 3
		if t32 < 0 {
			t32 = 0
		}
		if t32 > 6 {
			t32 = 6
		}
		ref := v * t32 / 6
		if !(want[i] == ref || want[i] != want[i] && ref != ref) {
			t.Fatalf("hardswish(%v) = %v, want %v", v, want[i], ref)
		}
	}
	if !haveSIMD {
		return
	}
	for _, n := range simdLengths {
		got := make([]float32, n)
		HardSwish(got, x[:n])
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(got[i] != got[i] && want[i] != want[i]) {
				t.Fatalf("length %d: element %d: hardswish(%v) = %v, the Go loop gives %v", n, i, x[i], got[i], want[i])
			}
		}
	}
}
