package data

import (
	"bytes"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

func rgbTestImage(w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			// Smooth, so that JPEG's chroma subsampling costs little.
			m.SetNRGBA(x, y, color.NRGBA{uint8(100 + 8*x), uint8(90 + 6*y), uint8(120 + 2*x + 3*y), 255})
		}
	}
	return m
}

func encode(t *testing.T, enc func(*bytes.Buffer) error) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := enc(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// makeFolder writes one image per format: lossless ones in class "a", JPEG
// and GIF (lossy or paletted) in class "b", WebP (from PIL) in class "c".
func makeFolder(t *testing.T) string {
	root := t.TempDir()
	for _, c := range []string{"a", "b", "c", ".hidden"} {
		os.Mkdir(filepath.Join(root, c), 0o755)
	}
	src := rgbTestImage(5, 4)
	gray := image.NewGray(image.Rect(0, 0, 3, 2))
	gray.Pix = []uint8{0, 51, 102, 153, 204, 255}
	writeFile(t, root, "a/1.png", encode(t, func(b *bytes.Buffer) error { return png.Encode(b, src) }))
	writeFile(t, root, "a/2.BMP", encode(t, func(b *bytes.Buffer) error { return bmp.Encode(b, src) }))
	writeFile(t, root, "a/3.tiff", encode(t, func(b *bytes.Buffer) error { return tiff.Encode(b, src, nil) }))
	writeFile(t, root, "a/4.png", encode(t, func(b *bytes.Buffer) error { return png.Encode(b, gray) }))
	writeFile(t, root, "a/notes.txt", []byte("not an image"))
	writeFile(t, root, "b/1.jpg", encode(t, func(b *bytes.Buffer) error { return jpeg.Encode(b, src, &jpeg.Options{Quality: 100}) }))
	// A palette holding exactly the image's colours makes the GIF lossless.
	pal := image.NewPaletted(src.Bounds(), nil)
	for y := 0; y < 4; y++ {
		for x := 0; x < 5; x++ {
			pal.Palette = append(pal.Palette, src.At(x, y))
			pal.SetColorIndex(x, y, uint8(len(pal.Palette)-1))
		}
	}
	writeFile(t, root, "b/2.gif", encode(t, func(b *bytes.Buffer) error { return gif.Encode(b, pal, nil) }))
	writeFile(t, root, ".hidden/x.png", encode(t, func(b *bytes.Buffer) error { return png.Encode(b, src) }))
	for _, n := range []string{"lossless.webp", "lossy.webp"} {
		b, err := os.ReadFile(filepath.Join("testdata", "webp", n))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, root, "c/"+n, b)
	}
	return root
}

func TestImageFolderFormats(t *testing.T) {
	root := makeFolder(t)
	f, err := OpenImageFolder(root, FolderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(f.Classes, ",") != "a,b,c" || f.Len() != 8 {
		t.Fatalf("classes %v, %d files: %v", f.Classes, f.Len(), f.Paths)
	}
	src := rgbTestImage(5, 4)
	for i, p := range f.Paths {
		m, label, err := f.Get(i)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if want := map[string]int{"a": 0, "b": 1, "c": 2}[filepath.Base(filepath.Dir(p))]; label != want {
			t.Errorf("%s: label %d want %d", p, label, want)
		}
		base := filepath.Base(p)
		switch {
		case base == "4.png":
			if m.C != 1 || m.W != 3 || m.Pix[1] != 0.2 || m.Pix[5] != 1 {
				t.Errorf("%s: grey image %+v", p, m)
			}
		case strings.HasSuffix(base, ".webp"):
			continue // compared with PIL below
		default:
			if m.C != 3 || m.H != 4 || m.W != 5 {
				t.Fatalf("%s: %dx%dx%d", p, m.C, m.H, m.W)
			}
			tol := float32(0) // png, bmp, tiff, gif (exact palette) are lossless
			if strings.HasSuffix(base, ".jpg") {
				// Go's encoder subsamples chroma 4:2:0 even at quality 100;
				// this gradient then loses up to 5/255 (measured).
				tol = 8.0 / 255
			}
			for y := 0; y < 4; y++ {
				for x := 0; x < 5; x++ {
					c := src.NRGBAAt(x, y)
					for ch, v := range []uint8{c.R, c.G, c.B} {
						if d := m.Pix[ch*20+y*5+x] - float32(v)/255; d > tol || -d > tol {
							t.Errorf("%s: pixel (%d,%d,%d) = %v want %v", p, ch, y, x, m.Pix[ch*20+y*5+x], float32(v)/255)
						}
					}
				}
			}
		}
	}
	// WebP: the pixels PIL decoded (scripts/gen_augment_golden.py).
	// Lossless must match exactly. Lossy VP8 stores chroma at half
	// resolution; libwebp interpolates it back, we repeat it (measured up to
	// 15/255 per channel on this steep gradient). Luma is
	// stored at full resolution, so the luma of the decoded RGB must agree
	// to rounding where neither decoder clipped a channel to 0 or 255, and
	// each channel's mean error must be near zero.
	b, err := os.ReadFile("testdata/webp/pixels.json")
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]struct {
		Size []int
		RGB  []int
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"lossless", "lossy"} {
		m, err := DecodeImageFile(filepath.Join("testdata", "webp", name+".webp"))
		if err != nil {
			t.Fatalf("%s.webp: %v", name, err)
		}
		w, h := want[name].Size[0], want[name].Size[1]
		if m.C != 3 || m.W != w || m.H != h {
			t.Fatalf("%s.webp: %dx%dx%d want 3x%dx%d", name, m.C, m.H, m.W, h, w)
		}
		rgb := want[name].RGB
		var worst, worstLuma float64
		var meanErr [3]float64
		for p := 0; p < w*h; p++ {
			var ours, pil [3]float64
			for ch := range 3 {
				ours[ch] = float64(m.Pix[ch*w*h+p]) * 255
				pil[ch] = float64(rgb[3*p+ch])
				worst = max(worst, abs(ours[ch]-pil[ch]))
				meanErr[ch] += (ours[ch] - pil[ch]) / float64(w*h)
			}
			luma := func(c [3]float64) float64 { return 0.299*c[0] + 0.587*c[1] + 0.114*c[2] }
			if !clipped(ours) && !clipped(pil) {
				worstLuma = max(worstLuma, abs(luma(ours)-luma(pil)))
			}
		}
		if name == "lossless" && worst > 1e-3 {
			t.Errorf("lossless.webp: max difference from PIL %.2f/255", worst)
		}
		if name == "lossy" {
			if worstLuma > 1 {
				t.Errorf("lossy.webp: luma differs from PIL's by %.2f/255", worstLuma)
			}
			for ch, e := range meanErr {
				if abs(e) > 0.75 {
					t.Errorf("lossy.webp: channel %d mean error %.2f/255", ch, e)
				}
			}
			t.Logf("lossy.webp vs PIL: max per-channel %.1f/255, max luma %.2f/255, mean errors %.2f", worst, worstLuma, meanErr)
		}
	}
}

func clipped(c [3]float64) bool {
	for _, v := range c {
		if v < 0.5 || v > 254.5 {
			return true
		}
	}
	return false
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestImageFolderDecodePolicy(t *testing.T) {
	root := makeFolder(t)
	good, _ := os.ReadFile(filepath.Join(root, "a/1.png"))
	writeFile(t, root, "a/0-broken.png", good[:len(good)/2])
	writeFile(t, root, "a/0-garbage.jpg", []byte("hello, not a jpeg at all"))

	f, err := OpenImageFolder(root, FolderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = f.Get(0) // a/0-broken.png sorts first
	var de *DecodeError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "0-broken.png") || !strings.Contains(err.Error(), "byte offset") || errors.Is(err, ErrSkipSample) {
		t.Fatalf("fail policy: %v", err)
	}
	if de.Offset <= 0 || de.Offset > de.Size {
		t.Errorf("offset %d of %d", de.Offset, de.Size)
	}
	_, _, err = f.Get(1) // a/0-garbage.jpg: no decoder recognises it
	if !errors.As(err, &de) || de.Offset != 0 || !strings.Contains(err.Error(), "byte offset 0") || !errors.Is(err, image.ErrFormat) {
		t.Fatalf("garbage file: %v", err)
	}

	var warned []error
	f, err = OpenImageFolder(root, FolderOptions{OnDecodeError: SkipOnDecodeError, Warn: func(err error) { warned = append(warned, err) }})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		for i := 0; i < 2; i++ {
			if _, _, err := f.Get(i); !errors.Is(err, ErrSkipSample) {
				t.Fatalf("skip policy, file %s: %v", f.Paths[i], err)
			}
		}
	}
	if len(warned) != 2 {
		t.Fatalf("%d warnings for 2 broken files read twice: %v", len(warned), warned)
	}
	for _, s := range []string{"fail", "skip", ""} {
		if _, err := ParseDecodePolicy(s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ParseDecodePolicy("ignore"); err == nil {
		t.Fatal("ParseDecodePolicy(ignore): no error")
	}
}

func TestImageFolderEmpty(t *testing.T) {
	root := t.TempDir()
	if _, err := OpenImageFolder(root, FolderOptions{}); err == nil || !strings.Contains(err.Error(), "no class") {
		t.Fatalf("no classes: %v", err)
	}
	os.Mkdir(filepath.Join(root, "x"), 0o755)
	if _, err := OpenImageFolder(root, FolderOptions{}); err == nil || !strings.Contains(err.Error(), "no images") {
		t.Fatalf("no images: %v", err)
	}
}
