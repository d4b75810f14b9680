package preprocess

import (
	"image"
	"image/color"

	"github.com/sslzoo/sslzoo/data/augment"
)

// pixels8 is an 8-bit CHW image with C = 1 (PIL mode "L") or 3 ("RGB"):
// what torchvision's eval transforms see after Image.convert.
type pixels8 struct {
	C, H, W int
	Pix     []uint8
}

// luma is PIL's convert("L"): ITU-R 601-2 in 16-bit fixed point, rounded.
func luma(r, g, b uint8) uint8 {
	return uint8((uint32(r)*19595 + uint32(g)*38470 + uint32(b)*7471 + 0x8000) >> 16)
}

// unpremul undoes alpha premultiplication of an 8-bit value, rounding.
func unpremul(c, a uint8) uint8 {
	switch a {
	case 0:
		return 0
	case 255:
		return c
	}
	return uint8(min((uint32(c)*255+uint32(a)/2)/uint32(a), 255))
}

// rgb8 is a colour's 8-bit red, green and blue before any alpha is
// applied, which is what PIL keeps when it drops alpha. 16-bit values keep
// their high byte, as PIL does reading 16-bit RGB PNGs.
func rgb8(c color.Color) (r, g, b uint8) {
	switch c := c.(type) {
	case color.NRGBA:
		return c.R, c.G, c.B
	case color.RGBA:
		return unpremul(c.R, c.A), unpremul(c.G, c.A), unpremul(c.B, c.A)
	case color.Gray:
		return c.Y, c.Y, c.Y
	case color.NRGBA64:
		return uint8(c.R >> 8), uint8(c.G >> 8), uint8(c.B >> 8)
	}
	n := color.NRGBA64Model.Convert(c).(color.NRGBA64)
	return uint8(n.R >> 8), uint8(n.G >> 8), uint8(n.B >> 8)
}

// toPixels8 converts a decoded image to 8-bit RGB or L (channels) as PIL's
// Image.convert does: alpha is dropped, not composited (PIL's RGBA->RGB
// keeps the stored colour of a transparent pixel), grey is replicated to
// RGB, and L is PIL's fixed-point luma of the 8-bit RGB. buf is reused when
// large enough.
//
// Known departures from PIL: 16-bit grey keeps its high byte, where PIL
// (mode "I;16") clips every value above 255 to white; JPEG's YCbCr and CMYK
// go through Go's conversions, not libjpeg's.
func toPixels8(img image.Image, channels string, buf []uint8) pixels8 {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	c := 3
	if channels == L {
		c = 1
	}
	n := w * h
	if cap(buf) < c*n {
		buf = make([]uint8, c*n)
	}
	p := pixels8{C: c, H: h, W: w, Pix: buf[:c*n]}
	// put stores one pixel's colour; the fast paths below call it too.
	var put func(i int, r, g, b uint8)
	if c == 1 {
		put = func(i int, r, g, b uint8) { p.Pix[i] = luma(r, g, b) }
	} else {
		put = func(i int, r, g, b uint8) { p.Pix[i], p.Pix[n+i], p.Pix[2*n+i] = r, g, b }
	}
	switch m := img.(type) {
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:w]
			for ch := 0; ch < c; ch++ {
				copy(p.Pix[ch*n+y*w:ch*n+(y+1)*w], row)
			}
		}
	case *image.Gray16:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:2*w]
			for x := 0; x < w; x++ {
				for ch := 0; ch < c; ch++ {
					p.Pix[ch*n+y*w+x] = row[2*x] // big-endian: the high byte first
				}
			}
		}
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:4*w]
			if c == 3 {
				r, g, bb := p.Pix[y*w:(y+1)*w], p.Pix[n+y*w:n+(y+1)*w], p.Pix[2*n+y*w:2*n+(y+1)*w]
				for x := range w {
					r[x], g[x], bb[x] = row[4*x], row[4*x+1], row[4*x+2]
				}
				continue
			}
			for x := range w {
				p.Pix[y*w+x] = luma(row[4*x], row[4*x+1], row[4*x+2])
			}
		}
	case *image.RGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:4*w]
			for x := range w {
				a := row[4*x+3]
				put(y*w+x, unpremul(row[4*x], a), unpremul(row[4*x+1], a), unpremul(row[4*x+2], a))
			}
		}
	case *image.Paletted:
		// Convert the palette once; indices past its end are black, as in PIL.
		var lut [256][3]uint8
		for i, col := range m.Palette {
			if i < 256 {
				lut[i][0], lut[i][1], lut[i][2] = rgb8(col)
			}
		}
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:w]
			for x, idx := range row {
				e := &lut[idx]
				put(y*w+x, e[0], e[1], e[2])
			}
		}
	case *image.YCbCr:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				yi, ci := m.YOffset(b.Min.X+x, b.Min.Y+y), m.COffset(b.Min.X+x, b.Min.Y+y)
				r, g, bb := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
				put(y*w+x, r, g, bb)
			}
		}
	default:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				r, g, bb := rgb8(img.At(b.Min.X+x, b.Min.Y+y))
				put(y*w+x, r, g, bb)
			}
		}
	}
	return p
}

// ToImage converts a decoded image to an augment.Image in [0,1] with the
// image's own channel count (grey sources: 1, all others: 3), dropping
// alpha as PIL's convert does. It is what training datasets decode to.
func ToImage(img image.Image) *augment.Image {
	ch := RGB
	switch img.(type) {
	case *image.Gray, *image.Gray16:
		ch = L
	}
	p := toPixels8(img, ch, nil)
	m := augment.NewImage(p.C, p.H, p.W)
	for i, v := range p.Pix {
		m.Pix[i] = float32(v) / 255
	}
	return m
}
