package augment

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Random transforms are checked by statistics over many draws with a fixed
// seed. Rates are tested within 5 standard errors, so a correct
// implementation fails with probability ~1e-6 per check; a wrong
// probability (e.g. 1-p) or range is far outside.

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

func checkRate(t *testing.T, name string, hits, n int, p float64) {
	t.Helper()
	got := float64(hits) / float64(n)
	se := math.Sqrt(p * (1 - p) / float64(n))
	if math.Abs(got-p) > 5*se+1e-12 {
		t.Errorf("%s: rate %.4f over %d draws, want %.4f +- %.4f", name, got, n, p, 5*se)
	}
}

func testImage(c, h, w int, seed uint64) *Image {
	rng := newRNG(seed)
	m := NewImage(c, h, w)
	for i := range m.Pix {
		m.Pix[i] = rng.Float32()
	}
	return m
}

func TestRandomResizedCropStatistics(t *testing.T) {
	for _, tc := range []struct {
		name          string
		t             RandomResizedCrop
		height, width int
	}{
		{"default 28x28", NewRandomResizedCrop(32), 28, 28},
		{"moco scale 32x48", RandomResizedCrop{H: 16, W: 16, Scale: [2]float64{0.2, 1}}, 32, 48},
		{"swav local 96x96", RandomResizedCrop{H: 8, W: 8, Scale: [2]float64{0.05, 0.14}}, 96, 96},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scale, ratio := tc.t.ranges()
			rng := newRNG(1)
			const n = 20000
			area := float64(tc.height * tc.width)
			var sumFrac float64
			var leftHalf int
			for range n {
				top, left, h, w := tc.t.Params(rng, tc.height, tc.width)
				if top < 0 || left < 0 || h <= 0 || w <= 0 || top+h > tc.height || left+w > tc.width {
					t.Fatalf("box top=%d left=%d h=%d w=%d outside %dx%d", top, left, h, w, tc.height, tc.width)
				}
				frac := float64(h*w) / area
				// Rounding h and w to integers moves the area by up to about
				// (h+w+1)/2 pixels; the aspect ratio likewise.
				slack := (float64(h+w) + 1) / 2 / area
				if frac < scale[0]-slack || frac > scale[1]+slack {
					t.Fatalf("area fraction %.4f outside %v (box %dx%d)", frac, scale, h, w)
				}
				ar := float64(w) / float64(h)
				lo := float64(w-1) / float64(h+1)
				hi := float64(w+1) / float64(max(h-1, 1))
				if hi < ratio[0] || lo > ratio[1] {
					t.Fatalf("aspect %.3f (box %dx%d) cannot round from %v", ar, h, w, ratio)
				}
				sumFrac += frac
				if left+w/2 < tc.width/2 {
					leftHalf++
				}
			}
			// Area is drawn uniformly in scale, then large boxes that do not
			// fit are redrawn, which lowers the mean a little: it must lie
			// between the lower bound and the uniform mean (+ slack).
			mean := sumFrac / n
			if mean < scale[0] || mean > (scale[0]+scale[1])/2+0.02 {
				t.Errorf("mean area fraction %.4f for scale %v", mean, scale)
			}
			// Positions are uniform: box centres fall left of the middle
			// about half the time.
			if f := float64(leftHalf) / n; f < 0.4 || f > 0.6 {
				t.Errorf("box centres left of the middle in %.3f of draws", f)
			}
			m, err := tc.t.Apply(testImage(3, tc.height, tc.width, 2), rng)
			if err != nil || m.H != tc.t.H || m.W != tc.t.W || m.C != 3 {
				t.Fatalf("Apply: %v, %+v", err, m)
			}
		})
	}
}

func TestRandomResizedCropFallback(t *testing.T) {
	// A 2x40 strip never fits a crop with aspect in [3/4, 4/3] at these
	// scales, so every draw falls back to the centre crop clipped to 4/3.
	rr := RandomResizedCrop{H: 4, W: 4, Scale: [2]float64{0.9, 1}}
	top, left, h, w := rr.Params(newRNG(3), 2, 40)
	if h != 2 || w != 3 || top != 0 || left != 18 {
		t.Fatalf("fallback box top=%d left=%d h=%d w=%d, want 0 18 2 3", top, left, h, w)
	}
}

func TestRandomFlipGrayscaleSolarizeRates(t *testing.T) {
	const n = 20000
	rng := newRNG(4)
	img := testImage(3, 2, 3, 5)
	for _, p := range []float64{0, 0.2, 0.5, 1} {
		flips, grays, sols, applies := 0, 0, 0, 0
		for range n {
			m, _ := RandomHorizontalFlip{P: p}.Apply(img.Clone(), rng)
			if m.Pix[0] != img.Pix[0] {
				flips++
			}
			m, _ = RandomGrayscale{P: p}.Apply(img.Clone(), rng)
			if m.Pix[0] == m.Pix[m.H*m.W] && m.Pix[0] != img.Pix[0] {
				grays++
			}
			m, _ = RandomSolarize{Threshold: 0, P: p}.Apply(img.Clone(), rng)
			if m.Pix[0] != img.Pix[0] {
				sols++
			}
			m, _ = RandomApply{P: p, T: RandomHorizontalFlip{P: 1}}.Apply(img.Clone(), rng)
			if m.Pix[0] != img.Pix[0] {
				applies++
			}
		}
		checkRate(t, "flip", flips, n, p)
		checkRate(t, "grayscale", grays, n, p)
		checkRate(t, "solarize", sols, n, p)
		checkRate(t, "RandomApply", applies, n, p)
	}
}

func TestColorJitterStatistics(t *testing.T) {
	cj := NewColorJitter(0.4, 0.8, 0.2, 0.1)
	want := [][2]float64{{0.6, 1.4}, {0.2, 1.8}, {0.8, 1.2}, {-0.1, 0.1}}
	rng := newRNG(6)
	const n = 20000
	var sums [4]float64
	var first [4]int
	for range n {
		p := cj.Params(rng)
		seen := [4]bool{}
		for _, o := range p.Order {
			seen[o] = true
		}
		if seen != [4]bool{true, true, true, true} {
			t.Fatalf("order %v is not a permutation", p.Order)
		}
		first[p.Order[0]]++
		for i, f := range []float64{p.Brightness, p.Contrast, p.Saturation, p.Hue} {
			if f < want[i][0] || f > want[i][1] {
				t.Fatalf("factor %d = %v outside %v", i, f, want[i])
			}
			sums[i] += f
		}
	}
	for i := range sums {
		// Uniform: mean at the centre within 5 standard errors.
		mid, width := (want[i][0]+want[i][1])/2, want[i][1]-want[i][0]
		if se := width / math.Sqrt(12*n); math.Abs(sums[i]/n-mid) > 5*se {
			t.Errorf("factor %d mean %.4f, want %.4f", i, sums[i]/n, mid)
		}
		checkRate(t, "op first in order", first[i], n, 0.25)
	}
	// Off properties draw nothing.
	p := NewColorJitter(0, 0.5, 0, 0).Params(rng)
	if !math.IsNaN(p.Brightness) || math.IsNaN(p.Contrast) || !math.IsNaN(p.Saturation) || !math.IsNaN(p.Hue) {
		t.Errorf("only contrast should be drawn: %+v", p)
	}
}

// ColorJitter.Apply must be exactly the functional ops in the drawn order.
func TestColorJitterMatchesFunctional(t *testing.T) {
	cj := NewColorJitter(0.4, 0.4, 0.4, 0.1)
	src := testImage(3, 5, 6, 7)
	for seed := range uint64(20) {
		p := cj.Params(newRNG(seed))
		got, err := cj.Apply(src.Clone(), newRNG(seed))
		if err != nil {
			t.Fatal(err)
		}
		want := src.Clone()
		for _, o := range p.Order {
			switch o {
			case 0:
				AdjustBrightness(want, p.Brightness)
			case 1:
				AdjustContrast(want, p.Contrast)
			case 2:
				AdjustSaturation(want, p.Saturation)
			case 3:
				AdjustHue(want, p.Hue)
			}
		}
		for i := range want.Pix {
			if got.Pix[i] != want.Pix[i] {
				t.Fatalf("seed %d: pixel %d = %v, want %v (order %v)", seed, i, got.Pix[i], want.Pix[i], p.Order)
			}
		}
	}
}

func TestRandomGaussianBlurSigmaRange(t *testing.T) {
	// A unit impulse blurred with a 5x5 kernel: the centre weight is
	// k1d[2]^2, which decreases with sigma. Recover sigma from it by
	// bisection and check it stays in range and averages the midpoint.
	rb := RandomGaussianBlur{Kernel: 5, Sigma: [2]float64{0.5, 2}}
	centre := func(sigma float64) float64 { k := GaussianKernel1D(5, sigma); return float64(k[2] * k[2]) }
	rng := newRNG(8)
	const n = 3000
	var sum float64
	for range n {
		m := NewImage(1, 9, 9)
		m.Pix[4*9+4] = 1
		m, err := rb.Apply(m, rng)
		if err != nil {
			t.Fatal(err)
		}
		c := float64(m.Pix[4*9+4])
		lo, hi := 0.3, 3.0
		for range 40 {
			mid := (lo + hi) / 2
			if centre(mid) > c {
				lo = mid
			} else {
				hi = mid
			}
		}
		s := (lo + hi) / 2
		if s < 0.5-1e-3 || s > 2+1e-3 {
			t.Fatalf("recovered sigma %.4f outside [0.5, 2]", s)
		}
		sum += s
	}
	if se := 1.5 / math.Sqrt(12*n); math.Abs(sum/n-1.25) > 5*se {
		t.Errorf("mean sigma %.4f, want 1.25", sum/n)
	}
}

func TestRecipesShapes(t *testing.T) {
	rng := newRNG(9)
	for _, tc := range []struct {
		name  string
		views []Transform
		sizes []int
	}{
		{"simclr", SimCLR(32, 0.5, true, FashionMNISTNorm), []int{32, 32}},
		{"mocov2", MoCoV2(32, FashionMNISTNorm), []int{32, 32}},
		{"byol", BYOL(32, FashionMNISTNorm), []int{32, 32}},
		{"swav", SwAV(32, 2, 16, 4, FashionMNISTNorm), []int{32, 32, 16, 16, 16, 16}},
	} {
		if len(tc.views) != len(tc.sizes) {
			t.Fatalf("%s: %d views, want %d", tc.name, len(tc.views), len(tc.sizes))
		}
		for v, tr := range tc.views {
			for range 50 {
				m, err := tr.Apply(testImage(1, 28, 28, 10), rng)
				if err != nil {
					t.Fatalf("%s view %d: %v", tc.name, v, err)
				}
				if m.C != 1 || m.H != tc.sizes[v] || m.W != tc.sizes[v] {
					t.Fatalf("%s view %d: %dx%dx%d", tc.name, v, m.C, m.H, m.W)
				}
			}
		}
	}
	// Grey data with an RGB backbone: ToRGB first, then the recipe.
	views := SimCLR(32, 1, true, ImageNetNorm)
	m, err := Compose{ToRGB{}, views[0]}.Apply(testImage(1, 28, 28, 11), rng)
	if err != nil || m.C != 3 {
		t.Fatalf("ToRGB + SimCLR: %v, C=%d", err, m.C)
	}
}

func TestBadArguments(t *testing.T) {
	m := testImage(3, 4, 4, 12)
	for name, err := range map[string]error{
		"crop outside":  func() error { _, err := ResizedCrop(m, 2, 2, 3, 3, 4, 4); return err }(),
		"brightness<0":  AdjustBrightness(m, -1),
		"hue>0.5":       AdjustHue(m, 0.6),
		"even kernel":   GaussianBlur(m, 4, 3, 1, 1),
		"zero sigma":    GaussianBlur(m, 3, 3, 0, 1),
		"normalize len": Normalize(m, []float64{0.5}, []float64{0.5, 0.5}),
		"std zero":      Normalize(m, []float64{0, 0, 0}, []float64{1, 0, 1}),
		"bad scale": func() error {
			_, err := (RandomResizedCrop{H: 4, W: 4, Scale: [2]float64{0.5, 0.1}}).Apply(m, newRNG(1))
			return err
		}(),
		"bad image": func() error {
			_, err := ResizedCrop(&Image{C: 2, H: 1, W: 1, Pix: []float32{0, 0}}, 0, 0, 1, 1, 2, 2)
			return err
		}(),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
