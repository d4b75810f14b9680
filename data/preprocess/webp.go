package preprocess

import "image"

// webpRGB converts lossy WebP's YCbCr 4:2:0 to RGB the way libwebp does
// (and so PIL): the planes are BT.601 studio range (Y in 16..235), not the
// full range image.YCbCr's colour model assumes, which would put dark
// pixels up to 15/255 too bright; and chroma is upsampled "fancily",
// interpolating between the two nearest sample rows and columns with
// weights 9:3:3:1, not taken from the covering sample. The arithmetic,
// rounding included, follows libwebp's portable C code, so the result is
// bit-exact. alpha, when not nil, is the alpha plane (stride = width).
func webpRGB(m *image.YCbCr, alpha []uint8) *image.NRGBA {
	b := m.Bounds()
	w, h := b.Dx(), b.Dy()
	out := image.NewNRGBA(image.Rect(0, 0, w, h))
	// Planes as row slices, relative to the image's origin.
	yRow := func(y int) []uint8 { o := m.YOffset(b.Min.X, b.Min.Y+y); return m.Y[o : o+w] }
	cw := (w + 1) / 2
	cRow := func(p []uint8, cy int) []uint8 {
		o := m.COffset(b.Min.X, b.Min.Y+2*cy)
		return p[o : o+cw]
	}
	dstRow := func(y int) []uint8 { return out.Pix[y*out.Stride : y*out.Stride+4*w] }
	ch := (h + 1) / 2
	// Row 0 stands alone, its chroma row mirrored as the row above.
	upsamplePair(yRow(0), nil, cRow(m.Cb, 0), cRow(m.Cr, 0), cRow(m.Cb, 0), cRow(m.Cr, 0), dstRow(0), nil, w)
	// Then rows 2k-1 and 2k lie between chroma rows k-1 and k.
	for k := 1; 2*k < h; k++ {
		upsamplePair(yRow(2*k-1), yRow(2*k), cRow(m.Cb, k-1), cRow(m.Cr, k-1), cRow(m.Cb, k), cRow(m.Cr, k), dstRow(2*k-1), dstRow(2*k), w)
	}
	if h%2 == 0 && h > 1 { // the last row of an even height stands alone too
		last := ch - 1
		upsamplePair(yRow(h-1), nil, cRow(m.Cb, last), cRow(m.Cr, last), cRow(m.Cb, last), cRow(m.Cr, last), dstRow(h-1), nil, w)
	}
	for y := 0; y < h; y++ {
		row := dstRow(y)
		if alpha == nil {
			for x := 0; x < w; x++ {
				row[4*x+3] = 0xff
			}
			continue
		}
		a := alpha[y*w : (y+1)*w]
		for x := 0; x < w; x++ {
			row[4*x+3] = a[x]
		}
	}
	return out
}

// upsamplePair writes the RGB of one or two output rows (bottom nil: only
// top) from the chroma rows above (tu, tv) and below (cu, cv) them.
func upsamplePair(topY, botY, tu, tv, cu, cv []uint8, topDst, botDst []uint8, n int) {
	// Each step works on u and v together, as libwebp packs them in one word;
	// the two never carry into each other, so separate sums are the same.
	type uv struct{ u, v int }
	at := func(u, v []uint8, i int) uv { return uv{int(u[i]), int(v[i])} }
	put := func(dst []uint8, x, y int, c uv) {
		dst[4*x], dst[4*x+1], dst[4*x+2] = yuvToRGB(y, c.u, c.v)
	}
	tl, l := at(tu, tv, 0), at(cu, cv, 0)
	put(topDst, 0, int(topY[0]), uv{(3*tl.u + l.u + 2) >> 2, (3*tl.v + l.v + 2) >> 2})
	if botY != nil {
		put(botDst, 0, int(botY[0]), uv{(3*l.u + tl.u + 2) >> 2, (3*l.v + tl.v + 2) >> 2})
	}
	for x := 1; x <= (n-1)>>1; x++ {
		t, c := at(tu, tv, x), at(cu, cv, x)
		avgU, avgV := tl.u+t.u+l.u+c.u+8, tl.v+t.v+l.v+c.v+8
		d12 := uv{(avgU + 2*(t.u+l.u)) >> 3, (avgV + 2*(t.v+l.v)) >> 3}
		d03 := uv{(avgU + 2*(tl.u+c.u)) >> 3, (avgV + 2*(tl.v+c.v)) >> 3}
		put(topDst, 2*x-1, int(topY[2*x-1]), uv{(d12.u + tl.u) >> 1, (d12.v + tl.v) >> 1})
		put(topDst, 2*x, int(topY[2*x]), uv{(d03.u + t.u) >> 1, (d03.v + t.v) >> 1})
		if botY != nil {
			put(botDst, 2*x-1, int(botY[2*x-1]), uv{(d03.u + l.u) >> 1, (d03.v + l.v) >> 1})
			put(botDst, 2*x, int(botY[2*x]), uv{(d12.u + c.u) >> 1, (d12.v + c.v) >> 1})
		}
		tl, l = t, c
	}
	if n%2 == 0 {
		put(topDst, n-1, int(topY[n-1]), uv{(3*tl.u + l.u + 2) >> 2, (3*tl.v + l.v + 2) >> 2})
		if botY != nil {
			put(botDst, n-1, int(botY[n-1]), uv{(3*l.u + tl.u + 2) >> 2, (3*l.v + tl.v + 2) >> 2})
		}
	}
}

// yuvToRGB is libwebp's BT.601 studio-range conversion in 14-bit fixed
// point: coefficients scaled by 2^14, products taken >> 8, and the sum
// rounded down from 6 fractional bits with clipping to 0..255.
func yuvToRGB(y, u, v int) (r, g, b uint8) {
	hi := func(x, k int) int { return (x * k) >> 8 }
	clip := func(x int) uint8 {
		switch {
		case x < 0:
			return 0
		case x >= 256<<6:
			return 255
		}
		return uint8(x >> 6)
	}
	yy := hi(y, 19077)
	return clip(yy + hi(v, 26149) - 14234), clip(yy - hi(u, 6419) - hi(v, 13320) + 8708), clip(yy + hi(u, 33050) - 17685)
}
