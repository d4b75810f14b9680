package preprocess

import (
	"errors"
	"image"
	"image/color"
)

// gifScreen makes Go's first GIF frame into the image PIL shows for it.
// Go returns the frame at its own bounds, with the transparent palette entry
// replaced by transparent black. PIL (9.x, first frame) paints the frame on
// the logical screen, fills the rest with the transparent index (index 0
// when there is none), and keeps that entry's colour, which convert("RGB")
// then shows. Here the entry keeps its colour with alpha 0, as NRGBA.
func gifScreen(p *image.Paletted, b []byte, cfg image.Config) (image.Image, error) {
	pal, ti, err := gifFirstFrame(b)
	if err != nil {
		return nil, err
	}
	palette := p.Palette
	if ti >= 0 && ti < len(palette) {
		palette = append(color.Palette(nil), palette...)
		c := color.NRGBA{}
		if 3*ti+2 < len(pal) {
			c = color.NRGBA{pal[3*ti], pal[3*ti+1], pal[3*ti+2], 0}
		}
		palette[ti] = c
	}
	screen := image.Rect(0, 0, cfg.Width, cfg.Height)
	if p.Rect == screen {
		p.Palette = palette
		return p, nil
	}
	fill := uint8(0)
	if ti >= 0 {
		fill = uint8(ti)
	}
	m := image.NewPaletted(screen, palette)
	for i := range m.Pix {
		m.Pix[i] = fill
	}
	r := p.Rect.Intersect(screen)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		copy(m.Pix[m.PixOffset(r.Min.X, y):m.PixOffset(r.Max.X, y)], p.Pix[p.PixOffset(r.Min.X, y):p.PixOffset(r.Max.X, y)])
	}
	return m, nil
}

var errGIFStructure = errors.New("gif: malformed block structure before the first frame")

// gifFirstFrame walks a GIF's blocks up to its first image and returns the
// raw colour table that image uses (its local one, else the global one) and
// its transparent index (-1: none). Go's decoder has already checked the
// file; this only recovers what it overwrote.
func gifFirstFrame(b []byte) (pal []byte, ti int, err error) {
	if len(b) < 13 {
		return nil, -1, errGIFStructure
	}
	table := func(flags byte) int { return 3 << ((flags & 7) + 1) }
	i := 13
	if b[10]&0x80 != 0 {
		n := table(b[10])
		if i+n > len(b) {
			return nil, -1, errGIFStructure
		}
		pal, i = b[i:i+n], i+n
	}
	ti = -1
	for i < len(b) {
		switch b[i] {
		case 0x21: // extension: label, then sub-blocks
			if i+1 >= len(b) {
				return nil, -1, errGIFStructure
			}
			label := b[i+1]
			i += 2
			first := true
			for {
				if i >= len(b) {
					return nil, -1, errGIFStructure
				}
				n := int(b[i])
				if n == 0 {
					i++
					break
				}
				if i+1+n > len(b) {
					return nil, -1, errGIFStructure
				}
				if label == 0xf9 && first && n >= 4 { // graphic control
					ti = -1
					if b[i+1]&1 != 0 {
						ti = int(b[i+4])
					}
				}
				first = false
				i += 1 + n
			}
		case 0x2c: // image descriptor
			if i+10 > len(b) {
				return nil, -1, errGIFStructure
			}
			if flags := b[i+9]; flags&0x80 != 0 {
				n := table(flags)
				if i+10+n > len(b) {
					return nil, -1, errGIFStructure
				}
				pal = b[i+10 : i+10+n]
			}
			return pal, ti, nil
		default:
			return nil, -1, errGIFStructure
		}
	}
	return nil, -1, errGIFStructure
}
