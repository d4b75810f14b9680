package preprocess

import (
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/sslzoo/sslzoo/internal/npy"
)

// The fixtures under testdata/golden are written by
// scripts/gen_preprocess_golden.py (PIL + torchvision); see its doc string.
// -update reruns it.
var update = flag.Bool("update", false, "regenerate testdata/golden with scripts/gen_preprocess_golden.py (needs /usr/bin/python3 with torchvision)")

func TestMain(m *testing.M) {
	flag.Parse()
	if *update {
		cmd := exec.Command("/usr/bin/python3", "../../scripts/gen_preprocess_golden.py")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "gen_preprocess_golden.py:", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

const goldenDir = "testdata/golden"

type goldenCase struct {
	Name         string
	Image        string
	Spec         Spec
	Expected     string
	Resized      bool
	DecoderExact bool `json:"decoder_exact"`
}

func loadGolden(t *testing.T) []goldenCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, "golden.json"))
	if err != nil {
		t.Fatalf("%v (regenerate: go test ./data/preprocess -run Golden -update)", err)
	}
	var g struct{ Cases []goldenCase }
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Cases) == 0 {
		t.Fatal("golden.json has no cases")
	}
	return g.Cases
}

// readTensor reads a C,H,W float32 .npy.
func readTensor(t *testing.T, name string) (data []float32, c, h, w int) {
	t.Helper()
	a, err := npy.ReadFile(filepath.Join(goldenDir, name))
	if err != nil {
		t.Fatal(err)
	}
	d, ok := a.Data.([]float32)
	if !ok || len(a.Shape) != 3 {
		t.Fatalf("%s: %s %v, want float32 C,H,W", name, a.DType, a.Shape)
	}
	return d, a.Shape[0], a.Shape[1], a.Shape[2]
}

type diffStats struct {
	maxAbs, cosine float64
	maxLevels      float64 // the largest difference in 8-bit levels (before normalising)
}

func compare(s Spec, got, want []float32) diffStats {
	var dot, gg, ww float64
	st := diffStats{}
	n := len(got) / s.NumChannels()
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		d := math.Abs(g - w)
		st.maxAbs = max(st.maxAbs, d)
		st.maxLevels = max(st.maxLevels, d*s.Std[i/n]/s.Scale)
		dot += g * w
		gg += g * g
		ww += w * w
	}
	st.cosine = dot / math.Sqrt(gg*ww)
	if gg == 0 && ww == 0 {
		st.cosine = 1
	}
	return st
}

// summary gathers the worst figures per kind of case for the log.
type summary map[string]*diffStats

func (m summary) add(kind string, st diffStats) {
	w, ok := m[kind]
	if !ok {
		w = &diffStats{cosine: 1}
		m[kind] = w
	}
	w.maxAbs = max(w.maxAbs, st.maxAbs)
	w.maxLevels = max(w.maxLevels, st.maxLevels)
	w.cosine = min(w.cosine, st.cosine)
}

func (m summary) log(t *testing.T) {
	for k, v := range m {
		t.Logf("%-28s min cosine %.6f, max abs diff %.3g (%.2f/255 levels)", k, v.cosine, v.maxAbs, v.maxLevels)
	}
}

// TestGoldenFiles runs the whole path, decode included, on every fixture.
func TestGoldenFiles(t *testing.T) {
	sum := summary{}
	for _, c := range loadGolden(t) {
		t.Run(c.Name, func(t *testing.T) {
			want, _, _, _ := readTensor(t, c.Expected)
			got, err := c.Spec.File(filepath.Join(goldenDir, c.Image))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d values, want %d", len(got), len(want))
			}
			st := compare(c.Spec, got, want)
			switch {
			case !c.DecoderExact:
				// JPEG: Go's decoder is not libjpeg (see TestJPEGDecoderDifference);
				// only the likeness is checked here.
				sum.add("jpeg (decoder differs)", st)
				if st.cosine < 0.99 {
					t.Errorf("cosine %.5f < 0.99 (max abs diff %.3g)", st.cosine, st.maxAbs)
				}
			case !c.Resized:
				sum.add("native size", st)
				if st.maxAbs > 1e-4 {
					t.Errorf("max abs diff %.3g > 1e-4 at native size", st.maxAbs)
				}
			default:
				sum.add("resized, "+c.Spec.Resize, st)
				if st.cosine < 0.99 {
					t.Errorf("cosine %.5f < 0.99 (max abs diff %.3g)", st.cosine, st.maxAbs)
				}
				// PIL rounds to 8 bits after each resampling pass, we once.
				if st.maxLevels > 2.01 {
					t.Errorf("differs from PIL by %.2f/255 (max abs diff %.3g)", st.maxLevels, st.maxAbs)
				}
			}
		})
	}
	sum.log(t)
}

// pilImage rebuilds PIL's converted pixels (a native case's tensor, values
// 0..255) as a Go image.
func pilImage(t *testing.T, name string) image.Image {
	d, c, h, w := readTensor(t, name)
	n := h * w
	level := func(v float32) uint8 {
		if v < 0 || v > 255 || v != float32(math.Round(float64(v))) {
			t.Fatalf("%s: value %v is not an 8-bit level", name, v)
		}
		return uint8(v)
	}
	if c == 1 {
		m := image.NewGray(image.Rect(0, 0, w, h))
		for i, v := range d {
			m.Pix[i] = level(v)
		}
		return m
	}
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < n; i++ {
		m.Pix[4*i], m.Pix[4*i+1], m.Pix[4*i+2], m.Pix[4*i+3] = level(d[i]), level(d[n+i]), level(d[2*n+i]), 255
	}
	return m
}

// TestGoldenOnPILPixels judges resize, crop, scale and normalisation alone:
// the input is PIL's own decoded, converted image, so decoder differences
// (JPEG) play no part.
func TestGoldenOnPILPixels(t *testing.T) {
	sum := summary{}
	native := map[string]string{}
	cases := loadGolden(t)
	for _, c := range cases {
		if !c.Resized {
			native[c.Image+"/"+c.Spec.Channels] = c.Expected
		}
	}
	for _, c := range cases {
		if !c.Resized {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			src, ok := native[c.Image+"/"+c.Spec.Channels]
			if !ok {
				t.Fatalf("no native %s case for %s", c.Spec.Channels, c.Image)
			}
			want, _, _, _ := readTensor(t, c.Expected)
			got, err := c.Spec.Apply(pilImage(t, src))
			if err != nil {
				t.Fatal(err)
			}
			st := compare(c.Spec, got, want)
			sum.add("resized, PIL's pixels in", st)
			if st.cosine < 0.99 || st.maxLevels > 2.01 {
				t.Errorf("cosine %.5f, %.2f/255 levels off (max abs diff %.3g)", st.cosine, st.maxLevels, st.maxAbs)
			}
		})
	}
	sum.log(t)
}

// TestJPEGDecoderDifference measures our JPEG decoding against libjpeg's
// (through PIL) on the same files. Go's image/jpeg does the entropy decoding
// and IDCT; chroma upsampling and colour conversion are libjpeg's (see
// jpegRGB), so what remains is the IDCTs' rounding.
func TestJPEGDecoderDifference(t *testing.T) {
	for _, c := range loadGolden(t) {
		if c.DecoderExact || c.Resized {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			want, _, _, _ := readTensor(t, c.Expected)
			got, err := c.Spec.File(filepath.Join(goldenDir, c.Image))
			if err != nil {
				t.Fatal(err)
			}
			var worst, mean float64
			for i := range got {
				d := math.Abs(float64(got[i] - want[i]))
				worst = max(worst, d)
				mean += d / float64(len(got))
			}
			t.Logf("Go's image/jpeg vs libjpeg: max %.0f/255, mean %.2f/255", worst, mean)
			// Measured: at most 2 levels, mean under 0.05 (the IDCTs' rounding).
			if mean > 0.25 || worst > 4 {
				t.Errorf("Go's image/jpeg is further from libjpeg than expected: max %.0f/255, mean %.2f/255", worst, mean)
			}
		})
	}
}

// TestGoldenGeometry checks the output size of Resize(int) and where
// CenterCrop starts (padding included) against torchvision's own answers.
func TestGoldenGeometry(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(goldenDir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Read as maps: the keys are snake_case.
	var raw struct {
		ResizeSizes []map[string]int `json:"resize_sizes"`
		CenterCrops []map[string]int `json:"center_crops"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw.ResizeSizes) == 0 || len(raw.CenterCrops) == 0 {
		t.Fatal("golden.json has no geometry cases")
	}
	for _, c := range raw.ResizeSizes {
		s := Spec{Size: [2]int{1, 1}, ResizeSize: c["resize_size"]}
		h, w := s.ResizedSize(c["h"], c["w"])
		if h != c["out_h"] || w != c["out_w"] {
			t.Errorf("Resize(%d) of %dx%d (HxW): got %dx%d, torchvision %dx%d", c["resize_size"], c["h"], c["w"], h, w, c["out_h"], c["out_w"])
		}
	}
	for _, c := range raw.CenterCrops {
		top, left := cropOffset(c["h"], c["crop_h"]), cropOffset(c["w"], c["crop_w"])
		if top != c["top"] || left != c["left"] {
			t.Errorf("CenterCrop(%dx%d) of %dx%d: starts at (%d,%d), torchvision (%d,%d)", c["crop_h"], c["crop_w"], c["h"], c["w"], top, left, c["top"], c["left"])
		}
	}
}
