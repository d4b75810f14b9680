package augment

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"
)

// Fixtures come from scripts/gen_augment_golden.py (torchvision 0.14.1 on
// float32 tensors); rerun it with /usr/bin/python3 to regenerate them.

type goldenInput struct {
	Shape []int     `json:"shape"`
	Data  []float64 `json:"data"`
}

type goldenCase struct {
	Op    string         `json:"op"`
	Input string         `json:"input"`
	Args  map[string]any `json:"args"`
	Shape []int          `json:"shape"`
	Out   []float64      `json:"out"`
	InU8  []int          `json:"in_u8"`
}

type goldenDoc struct {
	Inputs map[string]goldenInput `json:"inputs"`
	Cases  []goldenCase           `json:"cases"`
}

func loadGolden(t *testing.T) *goldenDoc {
	t.Helper()
	b, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var d goldenDoc
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("testdata/golden.json: %v", err)
	}
	return &d
}

func (g goldenInput) image() *Image {
	m := NewImage(g.Shape[0], g.Shape[1], g.Shape[2])
	for i, v := range g.Data {
		m.Pix[i] = float32(v)
	}
	return m
}

func argF(c goldenCase, k string) float64 { return c.Args[k].(float64) }
func argI(c goldenCase, k string) int     { return int(c.Args[k].(float64)) }

func argFs(c goldenCase, k string) []float64 {
	var out []float64
	for _, v := range c.Args[k].([]any) {
		out = append(out, v.(float64))
	}
	return out
}

// Tolerances. Our float32 maths is torchvision's operation for operation,
// and measured bit-identical for flip, brightness, saturation, hue,
// grayscale, solarize and normalize; 1e-7 leaves one ulp of a value near 1
// for a different but equally valid compiler contraction. Contrast sums the
// mean in another order (measured 6e-8), and blur is separable here but one
// 2-D convolution in torch (measured 2.4e-7). Resampling is x/image/draw's,
// not torch's: see TestResizedCropGolden for its bound.
var exactTol = map[string]float64{
	"hflip":      0,
	"brightness": 1e-7,
	"contrast":   2e-7,
	"saturation": 1e-7,
	"hue":        1e-7,
	"grayscale":  1e-7,
	"blur":       5e-7,
	"solarize":   0,
	"normalize":  1e-7,
}

func runOp(c goldenCase, m *Image) (*Image, error) {
	var err error
	switch c.Op {
	case "hflip":
		HFlip(m)
	case "brightness":
		err = AdjustBrightness(m, argF(c, "factor"))
	case "contrast":
		err = AdjustContrast(m, argF(c, "factor"))
	case "saturation":
		err = AdjustSaturation(m, argF(c, "factor"))
	case "hue":
		err = AdjustHue(m, argF(c, "factor"))
	case "grayscale":
		Grayscale(m)
	case "blur":
		err = GaussianBlur(m, argI(c, "kx"), argI(c, "ky"), argF(c, "sx"), argF(c, "sy"))
	case "solarize":
		err = Solarize(m, argF(c, "threshold"))
	case "normalize":
		err = Normalize(m, argFs(c, "mean"), argFs(c, "std"))
	case "resized_crop":
		return ResizedCrop(m, argI(c, "top"), argI(c, "left"), argI(c, "h"), argI(c, "w"), argI(c, "oh"), argI(c, "ow"))
	default:
		return nil, fmt.Errorf("unknown op %q", c.Op)
	}
	return m, err
}

func maxDiff(t *testing.T, c goldenCase, got *Image) float64 {
	t.Helper()
	if got.C != c.Shape[0] || got.H != c.Shape[1] || got.W != c.Shape[2] {
		t.Fatalf("%s(%s %v): shape %dx%dx%d, want %v", c.Op, c.Input, c.Args, got.C, got.H, got.W, c.Shape)
	}
	var worst float64
	for i, w := range c.Out {
		d := math.Abs(float64(got.Pix[i]) - w)
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		worst = max(worst, d)
	}
	return worst
}

func TestDeterministicOpsGolden(t *testing.T) {
	d := loadGolden(t)
	n := 0
	worst := map[string]float64{}
	for _, c := range d.Cases {
		tol, ok := exactTol[c.Op]
		if !ok {
			continue
		}
		got, err := runOp(c, d.Inputs[c.Input].image())
		if err != nil {
			t.Fatalf("%s(%s %v): %v", c.Op, c.Input, c.Args, err)
		}
		diff := maxDiff(t, c, got)
		worst[c.Op] = max(worst[c.Op], diff)
		if diff > tol {
			t.Errorf("%s(%s %v): max |ours - torchvision| = %.3g > %.3g", c.Op, c.Input, c.Args, diff, tol)
		}
		n++
	}
	t.Logf("max |ours - torchvision| per op: %v", worst)
	if n < 60 {
		t.Fatalf("only %d deterministic cases in the fixture", n)
	}
}

// TestResizedCropGolden compares x/image/draw's BiLinear against torchvision
// resized_crop(bilinear). Both put pixel centres at +0.5 and widen the
// triangle kernel when shrinking (antialias=True, like PIL), so they agree
// closely there; they differ at the borders (x/image/draw renormalises the
// clipped kernel, torch clamps the source coordinate) and by our 16-bit
// round trip through RGBA64 (<= 7.7e-6) and float64 accumulation. Measured
// (max abs error,
// values in [0,1]): 1.44e-5 against antialias=True for every box, and the
// same against antialias=False when enlarging (the two modes coincide
// there). Shrinking without antialias is a different filter (torch takes two
// taps); errors of 0.02-0.31 were measured, so use antialias=True pipelines
// (PIL's, and torchvision's behaviour on PIL images) as the reference.
const resizeTol = 2e-5

func TestResizedCropGolden(t *testing.T) {
	d := loadGolden(t)
	worstAA, worstNoAA := 0.0, 0.0
	for _, c := range d.Cases {
		if c.Op != "resized_crop" {
			continue
		}
		got, err := runOp(c, d.Inputs[c.Input].image())
		if err != nil {
			t.Fatalf("%s(%s %v): %v", c.Op, c.Input, c.Args, err)
		}
		diff := maxDiff(t, c, got)
		up := argI(c, "oh") >= argI(c, "h") && argI(c, "ow") >= argI(c, "w")
		aa := c.Args["antialias"].(bool)
		if (aa || up) && diff > resizeTol {
			t.Errorf("%s(%s %v): max |ours - torchvision| = %.3g > %.3g", c.Op, c.Input, c.Args, diff, resizeTol)
		}
		if !aa && !up && diff < 1e-3 {
			// Guards the claim in the doc comment: without antialias torch
			// samples 2 taps when shrinking, we integrate the footprint.
			t.Errorf("%s(%s %v): expected to differ from antialias=False when shrinking, max diff %.3g", c.Op, c.Input, c.Args, diff)
		}
		t.Logf("%s antialias=%v box %vx%v -> %vx%v: max err %.3g", c.Input, c.Args["antialias"], c.Args["h"], c.Args["w"], c.Args["oh"], c.Args["ow"], diff)
		if c.Args["antialias"].(bool) {
			worstAA = max(worstAA, diff)
		} else {
			worstNoAA = max(worstNoAA, diff)
		}
	}
	t.Logf("worst: antialias=True %.3g, antialias=False %.3g", worstAA, worstNoAA)
}

// TestResizedCropMatchesPIL compares with torchvision's resized_crop on PIL
// images (uint8, PIL's antialiased bilinear), which is what pipelines over
// torchvision datasets do. PIL computes in fixed point and rounds to uint8;
// we round our float result the same way, so the two may differ by one
// level where the exact value sits near a rounding boundary: measured, 697
// of 8400 values differ, none by more than 1/255.
func TestResizedCropMatchesPIL(t *testing.T) {
	d := loadGolden(t)
	n, worst, off := 0, 0.0, 0
	for _, c := range d.Cases {
		if c.Op != "pil_resized_crop" {
			continue
		}
		in := d.Inputs[c.Input]
		m := NewImage(in.Shape[0], in.Shape[1], in.Shape[2])
		for i, v := range c.InU8 {
			m.Pix[i] = float32(v) / 255
		}
		got, err := runOp(goldenCase{Op: "resized_crop", Args: c.Args}, m)
		if err != nil {
			t.Fatal(err)
		}
		if got.C != c.Shape[0] || got.H != c.Shape[1] || got.W != c.Shape[2] {
			t.Fatalf("%v: shape %dx%dx%d want %v", c.Args, got.C, got.H, got.W, c.Shape)
		}
		for i, w := range c.Out {
			ours := math.Round(float64(got.Pix[i]) * 255)
			diff := math.Abs(ours - math.Round(w*255))
			worst = max(worst, diff)
			if diff > 0 {
				off++
			}
			if diff > 1 {
				t.Errorf("%s %v value %d: ours %v/255, PIL %v/255", c.Input, c.Args, i, ours, w*255)
			}
		}
		n += len(c.Out)
	}
	if n == 0 {
		t.Fatal("no PIL cases in the fixture")
	}
	t.Logf("PIL resized_crop: %d of %d values differ after rounding to uint8, by at most %v/255", off, n, worst)
}
