package augment

import (
	"image"
	"image/color"
	"math"
	"testing"

	"golang.org/x/image/draw"
)

func TestFromImageFormats(t *testing.T) {
	// Opaque and translucent RGBA (premultiplied), NRGBA, Gray, Gray16 and
	// a paletted image (generic path) all map to un-premultiplied [0,1].
	rgba := image.NewRGBA(image.Rect(0, 0, 2, 1))
	rgba.SetRGBA(0, 0, color.RGBA{255, 51, 0, 255})
	rgba.SetRGBA(1, 0, color.RGBA{64, 32, 0, 128}) // NRGBA (127.5, 63.75, 0, 128)
	m := FromImage(rgba)
	if m.C != 3 || m.Pix[0] != 1 || m.Pix[2] != 0.2 || math.Abs(float64(m.Pix[1])-0.5) > 1e-6 || math.Abs(float64(m.Pix[3])-0.25) > 1e-6 {
		t.Fatalf("RGBA: %v", m.Pix)
	}
	nrgba := image.NewNRGBA(image.Rect(0, 0, 1, 1))
	nrgba.SetNRGBA(0, 0, color.NRGBA{10, 20, 30, 40})
	if m := FromImage(nrgba); m.Pix[0] != 10.0/255 || m.Pix[2] != 30.0/255 {
		t.Fatalf("NRGBA: %v", m.Pix)
	}
	g := image.NewGray(image.Rect(3, 4, 5, 5)) // non-zero origin
	g.SetGray(4, 4, color.Gray{255})
	if m := FromImage(g); m.C != 1 || m.W != 2 || m.H != 1 || m.Pix[0] != 0 || m.Pix[1] != 1 {
		t.Fatalf("Gray: %+v", m)
	}
	g16 := image.NewGray16(image.Rect(0, 0, 1, 1))
	g16.SetGray16(0, 0, color.Gray16{0x8000})
	if m := FromImage(g16); m.C != 1 || m.Pix[0] != float32(0x8000)/65535 {
		t.Fatalf("Gray16: %v", m.Pix)
	}
	pal := image.NewPaletted(image.Rect(0, 0, 1, 1), color.Palette{color.RGBA{0, 102, 255, 255}})
	if m := FromImage(pal); m.C != 3 || m.Pix[1] != 0.4 || m.Pix[2] != 1 {
		t.Fatalf("Paletted: %v", m.Pix)
	}
}

func TestImageAsDrawImage(t *testing.T) {
	var _ draw.RGBA64Image = (*Image)(nil)
	// The 16-bit round trip through RGBA64At/SetRGBA64 loses at most half
	// a 16-bit step, and clamps out-of-range values.
	src := &Image{C: 3, H: 1, W: 4, Pix: []float32{0.1, 0.5, -0.2, 1.3, 0.123456, 0.7, 0, 1, 0.9, 0.333, 0.25, 0.999}}
	dst := NewImage(3, 1, 4)
	draw.Draw(dst, dst.Bounds(), src, image.Point{}, draw.Src)
	for i, v := range src.Pix {
		want := min(max(v, 0), 1)
		if d := math.Abs(float64(dst.Pix[i] - want)); d > 0.5/65535+1e-7 {
			t.Errorf("value %d: %v -> %v", i, v, dst.Pix[i])
		}
	}
	// Grey images read as r=g=b and store the red channel.
	gray := &Image{C: 1, H: 1, W: 1, Pix: []float32{0.6}}
	c := gray.RGBA64At(0, 0)
	if c.R != c.G || c.G != c.B || c.A != 0xffff {
		t.Fatalf("grey RGBA64At: %v", c)
	}
	gray.Set(0, 0, color.RGBA{51, 0, 0, 255})
	if gray.Pix[0] != 0.2 {
		t.Fatalf("grey Set: %v", gray.Pix[0])
	}
	if gray.RGBA64At(5, 5) != (color.RGBA64{}) {
		t.Fatal("out-of-bounds pixel is not transparent black")
	}
}
