package preprocess

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/internal/fuzzcheck"
)

// fuzzMaxPixels is the pixel limit the decode target runs under: small, so
// that the allocation bound it implies is tight.
const fuzzMaxPixels = 1 << 16

// fuzzPerPixel is what one pixel under the limit may cost in all: the
// decoder's image (up to 8 bytes for 16-bit RGBA) and its working planes
// (a progressive JPEG's coefficients), the PIL-faithful RGB copy, the
// 8-bit planes and the float32 copy the resize reads.
const fuzzPerPixel = 64

// fuzzSpecs are the preprocessing the decode target applies, picked by its
// second argument: every resize filter, crop mode and channel count, a crop
// wider than the resized image (padding) and resize_size 0 (whole image).
var fuzzSpecs = []Spec{
	{Channels: RGB, Size: [2]int{8, 8}, Scale: 1.0 / 255, Mean: []float64{0.485, 0.456, 0.406}, Std: []float64{0.229, 0.224, 0.225}},
	{Channels: RGB, Size: [2]int{16, 16}, ResizeSize: 20, Crop: "center", Resize: "bicubic", Scale: 1.0 / 255, Mean: []float64{0.5, 0.5, 0.5}, Std: []float64{0.5, 0.5, 0.5}},
	{Channels: L, Size: [2]int{8, 12}, Resize: "bicubic", Scale: 1, Mean: []float64{0}, Std: []float64{1}},
	{Channels: RGB, Size: [2]int{24, 24}, ResizeSize: 24, Crop: "center", Scale: 1, Mean: []float64{123.675, 116.28, 103.53}, Std: []float64{58.395, 57.12, 57.375}},
	{Channels: L, Size: [2]int{16, 32}, ResizeSize: 16, Crop: "center", Scale: 1.0 / 255, Mean: []float64{0.5}, Std: []float64{0.5}},
}

// FuzzDecode: any bytes give a one-line *DecodeError, or an image within
// the pixel limit that the pipeline sslzoo embed runs on each file (Decode,
// then prepared.into) turns into an error or exactly the spec's C*H*W
// finite values. The allocation is bounded by the input's size and the
// pixel limit, whatever dimensions a header declares. The seeds are the
// golden images, testdata/broken.png, TestDecodeRefusesBadFiles' files
// (truncated, garbage, empty, header only, huge declared dimensions in
// each format) and a one-pixel-high strip whose resize would be huge.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(goldenDir, "*"))
	i := 0
	for _, p := range files {
		if ext := filepath.Ext(p); ext == ".npy" || ext == ".json" {
			continue
		}
		fuzzcheck.Seed(f, filepath.Base(p), fuzzcheck.File(f, p), uint16(i))
		i++
	}
	fuzzcheck.Seed(f, "broken.png", fuzzcheck.File(f, "testdata/broken.png"), uint16(0))
	good := fuzzcheck.File(f, filepath.Join(goldenDir, "rgba.png"))
	fuzzcheck.Seed(f, "truncated.png", good[:len(good)/2], uint16(1))
	fuzzcheck.Seed(f, "garbage", []byte("hello, this is not an image at all"), uint16(0))
	fuzzcheck.Seed(f, "empty", []byte{}, uint16(0))
	fuzzcheck.Seed(f, "header_only.png", pngHeader(8, 8), uint16(0))
	fuzzcheck.Seed(f, "huge.png", pngHeader(100000, 100000), uint16(0))
	fuzzcheck.Seed(f, "huge.bmp", bmpHeader(100000, 100000), uint16(0))
	fuzzcheck.Seed(f, "huge.gif", gifHeader(65535, 65535), uint16(0))
	fuzzcheck.Seed(f, "huge.jpg", jpegHeader(60000, 60000), uint16(0))
	fuzzcheck.Seed(f, "huge.webp", webpHeader(16384, 16384), uint16(0))
	// Under the pixel limit, but its shorter side of 1 resizes to 24, the
	// longer to 24*60000: a strip of a few hundred bytes asking for more
	// than a gigabyte of resize buffers.
	var strip bytes.Buffer
	if err := png.Encode(&strip, image.NewGray(image.Rect(0, 0, 60000, 1))); err != nil {
		f.Fatal(err)
	}
	fuzzcheck.Seed(f, "strip.png", strip.Bytes(), uint16(3))
	f.Fuzz(func(t *testing.T, b []byte, which uint16) {
		p, err := fuzzSpecs[int(which)%len(fuzzSpecs)].prepare()
		if err != nil {
			t.Fatal(err)
		}
		opts := DecodeOptions{MaxPixels: fuzzMaxPixels}
		limit := fuzzcheck.Limit(len(b), 16) + fuzzMaxPixels*fuzzPerPixel
		fuzzcheck.Bounded(t, limit, func() {
			img, err := Decode("fuzz.img", b, opts)
			if err != nil {
				var de *DecodeError
				if !errors.As(err, &de) || de.Offset < 0 || de.Offset > de.Size || de.Size != int64(len(b)) {
					t.Fatalf("%T %v: want a *DecodeError with an offset within the %d bytes", err, err, len(b))
				}
				checkOneLine(t, err)
				return
			}
			r := img.Bounds()
			if r.Empty() || int64(r.Dx())*int64(r.Dy()) > fuzzMaxPixels {
				t.Fatalf("decoded a %v image, the limit is %d pixels", r, fuzzMaxPixels)
			}
			dst := make([]float32, p.Len())
			if err := p.into(dst, img, &scratch{}); err != nil {
				checkOneLine(t, err)
				return
			}
			for i, v := range dst {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("value %d of %d is %v", i, len(dst), v)
				}
			}
		})
	})
}

// FuzzSpec: any text given as sslzoo.preprocess metadata is refused by
// json.Unmarshal or Validate, or is a spec that survives marshalling
// unchanged and makes finite values of its exact shape from an image. The
// seeds are the golden cases' specs, TestApplyRefuses' bad ones and the
// old spellings Normalize accepts.
func FuzzSpec(f *testing.F) {
	seen := map[string]bool{}
	for _, c := range loadGoldenSpecs(f) {
		b, err := json.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		if !seen[string(b)] {
			seen[string(b)] = true
			fuzzcheck.Seed(f, fmt.Sprintf("golden_%02d", len(seen)), string(b))
		}
	}
	fuzzcheck.Seed(f, "reader", mustJSON(f, readerSpec))
	fuzzcheck.Seed(f, "old_grey", `{"channels":"grey","size":[28,28],"scale":0.00392156862745098,"mean":[0.5],"std":[0.5]}`)
	fuzzcheck.Seed(f, "no_crop_resize", `{"layout":"NCHW","channels":"RGB","size":[8,8],"resize_size":8,"crop":"none","scale":1,"mean":[0,0,0],"std":[1,1,1]}`)
	fuzzcheck.Seed(f, "nearest", `{"channels":"RGB","size":[8,8],"resize":"nearest","scale":1,"mean":[0,0,0],"std":[1,1,1]}`)
	fuzzcheck.Seed(f, "huge_mean", `{"channels":"L","size":[4,4],"scale":1,"mean":[1e300],"std":[1]}`)
	fuzzcheck.Seed(f, "tiny_std", `{"channels":"L","size":[4,4],"scale":1,"mean":[0],"std":[1e-300]}`)
	fuzzcheck.Seed(f, "huge_scale", `{"channels":"L","size":[4,4],"scale":1e300,"mean":[0],"std":[1]}`)
	fuzzcheck.Seed(f, "not_json", `{"channels":`)
	img := image.NewNRGBA(image.Rect(0, 0, 5, 3))
	for i := range img.Pix {
		img.Pix[i] = uint8(37 * i)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fuzzcheck.Bounded(t, fuzzcheck.Limit(len(s), 16), func() {
			var sp Spec
			if json.Unmarshal([]byte(s), &sp) != nil {
				return
			}
			sp.Normalize()
			if err := sp.Validate(); err != nil {
				checkOneLine(t, err)
				return
			}
			b, err := json.Marshal(sp)
			if err != nil {
				t.Fatalf("Marshal of a valid spec: %v", err)
			}
			var back Spec
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("Unmarshal of Marshal: %v", err)
			}
			back.Normalize()
			if !reflect.DeepEqual(back, sp) {
				t.Fatalf("round trip changed %+v into %+v", sp, back)
			}
			// Applying it allocates what the spec asks for, which the bound
			// on the text does not cover: only small specs are run.
			if sp.Len() > 1<<12 || sp.ResizeSize > 64 {
				return
			}
			x, err := sp.Apply(img)
			if err != nil {
				checkOneLine(t, err)
				return
			}
			if len(x) != sp.Len() {
				t.Fatalf("%d values for a %dx%dx%d spec", len(x), sp.NumChannels(), sp.Size[0], sp.Size[1])
			}
			for i, v := range x {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("value %d of %d is %v for %s", i, len(x), v, s)
				}
			}
		})
	})
}

func loadGoldenSpecs(f *testing.F) []Spec {
	var g struct{ Cases []struct{ Spec Spec } }
	if err := json.Unmarshal(fuzzcheck.File(f, filepath.Join(goldenDir, "golden.json")), &g); err != nil {
		f.Fatal(err)
	}
	specs := make([]Spec, len(g.Cases))
	for i, c := range g.Cases {
		specs[i] = c.Spec
	}
	return specs
}

func mustJSON(f *testing.F, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		f.Fatal(err)
	}
	return string(b)
}

func checkOneLine(t *testing.T, err error) {
	t.Helper()
	if msg := err.Error(); msg == "" || strings.ContainsAny(msg, "\r\n") {
		t.Fatalf("error %q is not one line", msg)
	}
}
