package preprocess

import (
	"image"
	"image/color"
	"math"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/data/augment"
)

func TestApplyRefuses(t *testing.T) {
	good := readerSpec
	noCrop := good
	noCrop.Crop = "none"
	badResize := good
	badResize.Resize = "nearest"
	hugeMean := good
	hugeMean.Mean = []float64{0.5, 1e300, 0.3}
	cases := []struct {
		name string
		spec Spec
		img  image.Image
		dst  int // ApplyInto buffer length; 0: use Apply
		want string
	}{
		{"resize_size without a crop", noCrop, image.NewGray(image.Rect(0, 0, 8, 8)), 0, "varying size"},
		{"unknown filter", badResize, image.NewGray(image.Rect(0, 0, 8, 8)), 0, "want bilinear or bicubic"},
		{"extreme aspect ratio", good, image.NewGray(image.Rect(0, 0, 1, 1<<24)), 0, "aspect ratio"},
		// 8x480000 is under maxResized, but 64 times the strip itself and far
		// more than 64 times the spec's 8x8: the intermediate is refused.
		{"strip upscaled", good, image.NewGray(image.Rect(0, 0, 60000, 1)), 0, "aspect ratio"},
		{"mean beyond float32", hugeMean, image.NewGray(image.Rect(0, 0, 8, 8)), 0, "channel 1: scale"},
		{"empty image", good, image.NewGray(image.Rect(0, 0, 0, 5)), 0, "empty image"},
		{"short buffer", good, image.NewGray(image.Rect(0, 0, 8, 8)), 10, "holds 10 values, want 192"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			if c.dst > 0 {
				err = c.spec.ApplyInto(make([]float32, c.dst), c.img)
			} else {
				_, err = c.spec.Apply(c.img)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error saying %q", err, c.want)
			}
		})
	}
}

// TestConvertSources covers source types the golden files do not (PIL
// cannot write them, or reads them differently on purpose), on single
// pixels whose conversion is known exactly.
func TestConvertSources(t *testing.T) {
	rgba64 := image.NewRGBA64(image.Rect(0, 0, 1, 1))
	rgba64.SetRGBA64(0, 0, color.RGBA64{0x1234, 0xabcd, 0xff00, 0xffff})
	gray16 := image.NewGray16(image.Rect(0, 0, 1, 1))
	gray16.SetGray16(0, 0, color.Gray16{0x8f01})
	premul := image.NewRGBA(image.Rect(0, 0, 1, 1))
	premul.SetRGBA(0, 0, color.RGBA{50, 25, 0, 100}) // NRGBA (128, 64, 0) at alpha 100
	cmyk := image.NewCMYK(image.Rect(0, 0, 1, 1))
	cmyk.SetCMYK(0, 0, color.CMYK{0, 255, 255, 0})
	cases := []struct {
		name string
		img  image.Image
		rgb  [3]uint8
	}{
		{"16-bit RGB keeps the high byte (as PIL)", rgba64, [3]uint8{0x12, 0xab, 0xff}},
		{"16-bit grey keeps the high byte (PIL would clip to 255)", gray16, [3]uint8{0x8f, 0x8f, 0x8f}},
		{"premultiplied alpha is undone", premul, [3]uint8{128, 64, 0}},
		{"CMYK", cmyk, [3]uint8{255, 0, 0}},
	}
	for _, c := range cases {
		p := toPixels8(c.img, RGB, nil)
		if got := [3]uint8{p.Pix[0], p.Pix[1], p.Pix[2]}; got != c.rgb {
			t.Errorf("%s: RGB %v, want %v", c.name, got, c.rgb)
		}
		l := toPixels8(c.img, L, nil)
		if want := luma(c.rgb[0], c.rgb[1], c.rgb[2]); l.Pix[0] != want {
			t.Errorf("%s: L %d, want %d", c.name, l.Pix[0], want)
		}
	}
}

// TestCenterResizeMatchesSpec: augment's evaluation geometry (CenterResize,
// what `eval knn` and the kNN monitor feed a backbone) takes the same part
// of a non-square image as the recorded preprocessing `embed` and `serve`
// apply; the two differ only by the 8-bit rounding PIL does after its
// resize (at most one level, plus float noise).
func TestCenterResizeMatchesSpec(t *testing.T) {
	for _, wh := range [][2]int{{40, 25}, {25, 40}, {33, 33}, {17, 30}} {
		img := image.NewRGBA(image.Rect(0, 0, wh[0], wh[1]))
		for i := range img.Pix {
			img.Pix[i] = uint8(i*37 + i/7*11)
		}
		for i := 3; i < len(img.Pix); i += 4 {
			img.Pix[i] = 255
		}
		spec := Spec{Layout: "NCHW", Channels: RGB, Size: [2]int{16, 16}, ResizeSize: 16, Resize: "bilinear", Crop: "center",
			Scale: 1.0 / 255, Mean: []float64{0, 0, 0}, Std: []float64{1, 1, 1}}
		want, err := spec.Apply(img)
		if err != nil {
			t.Fatal(err)
		}
		got, err := augment.CenterResize{Size: 16}.Apply(ToImage(img), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got.C != 3 || got.H != 16 || got.W != 16 {
			t.Fatalf("%v: CenterResize gave %dx%dx%d", wh, got.C, got.H, got.W)
		}
		worst := 0.0
		for i, v := range got.Pix {
			worst = max(worst, math.Abs(float64(v-want[i])))
		}
		if worst > 1.0/255+1e-5 {
			t.Errorf("%dx%d: CenterResize differs from the recorded preprocessing by %.4f (more than one 8-bit level)", wh[0], wh[1], worst)
		}
	}
}
