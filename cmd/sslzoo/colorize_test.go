package main

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/zoo/ssl"
)

// colourFolder writes n 16x16 images of two colours each into root/a and
// root/b, a folder data set with colour to learn.
func colourFolder(t *testing.T, n int) string {
	t.Helper()
	root := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 6))
	for _, cls := range []string{"a", "b"} {
		d := filepath.Join(root, cls)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			m := image.NewRGBA(image.Rect(0, 0, 16, 16))
			c1 := color.RGBA{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), 255}
			c2 := color.RGBA{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), 255}
			for y := range 16 {
				for x := range 16 {
					if x < 8 {
						m.SetRGBA(x, y, c1)
					} else {
						m.SetRGBA(x, y, c2)
					}
				}
			}
			var buf bytes.Buffer
			if err := png.Encode(&buf, m); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, string(rune('a'+i))+".png"), buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

// TestColorize trains a tiny Colorization run and colours with it: the
// grid holds three rows (original, grey, colourised) of the right size,
// the grey row is grey, and the colourised pixels keep the original's
// lightness, which is all the network is given.
func TestColorize(t *testing.T) {
	root := colourFolder(t, 8)
	run := t.TempDir()
	code, _, errs := runCLI("train", "colorization", "--data", "folder:"+root, "--width", "0.0625", "--size", "16", "--batch", "8",
		"--epochs", "1", "--knn-every", "0", "--workers", "1", "--out", run)
	if code != 0 {
		t.Fatalf("train colorization: exit %d: %s", code, errs)
	}
	ckpt := filepath.Join(run, ssl.CheckpointFile)
	out := t.TempDir()
	code, stdout, errs := runCLI("colorize", "--checkpoint", ckpt, "--data", "folder:"+root, "--n", "3", "--scale", "1", "--out", out)
	if code != 0 || !strings.Contains(stdout, "wrote 3 images and grid.png") {
		t.Fatalf("colorize: exit %d: %s%s", code, stdout, errs)
	}
	grid := readPNG(t, filepath.Join(out, "grid.png"))
	if b := grid.Bounds(); b.Dx() != 3*18+2 || b.Dy() != 3*18+2 {
		t.Fatalf("grid is %v, want 3 columns and 3 rows of 16-px cells with 2-px gaps", b)
	}
	one := readPNG(t, filepath.Join(out, "image-000.png"))
	if b := one.Bounds(); b.Dx() != 3*18+2 || b.Dy() != 18+2 {
		t.Fatalf("image-000.png is %v, want one row of 3 cells", b)
	}
	at := func(img image.Image, cell, x, y int) (r, g, b float64) {
		c := color.NRGBAModel.Convert(img.At(2+cell*18+x, 2+y)).(color.NRGBA)
		return float64(c.R) / 255, float64(c.G) / 255, float64(c.B) / 255
	}
	var worstL float64
	for y := range 16 {
		for x := range 16 {
			r, g, b := at(one, 1, x, y)
			if r != g || g != b {
				t.Fatalf("grey cell pixel (%d, %d) is (%g, %g, %g)", x, y, r, g, b)
			}
			l0, _, _ := ssl.SRGBToLab(at(one, 0, x, y))
			l1, _, _ := ssl.SRGBToLab(at(one, 2, x, y))
			worstL = math.Max(worstL, math.Abs(l0-l1))
		}
	}
	// 8-bit rounding and colours clipped into the sRGB cube move L a little.
	if worstL > 8 {
		t.Errorf("colourised pixels left the original lightness by up to %.2f L", worstL)
	}
	code, _, errs = runCLI("colorize", "--checkpoint", filepath.Join(run, ssl.FinalFile), "--out", out)
	if code == 0 || !strings.Contains(errs, "holds the backbone only") {
		t.Errorf("final weights: exit %d, %q; want a pointer to the checkpoint", code, errs)
	}
	img := filepath.Join(root, "a", "a.png")
	code, _, errs = runCLI("colorize", "--checkpoint", ckpt, "--out", out, img, img)
	if code != 0 {
		t.Fatalf("colorize files: exit %d: %s", code, errs)
	}
	for _, name := range []string{"a.png", "a-2.png"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Errorf("a file given twice: %v", err)
		}
	}
}

func readPNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}
