package preprocess

import "image"

// jpegRGB converts a JPEG's YCbCr planes to RGB the way libjpeg does by
// default, which is what PIL shows: chroma subsampled 2x horizontally
// (4:2:2) or 2x both ways (4:2:0) is upsampled with libjpeg's triangle
// filter ("fancy upsampling": 3/4 of the nearer sample, 1/4 of the
// farther, with its alternating rounding biases, and the edge samples
// repeated), and the colour conversion uses libjpeg's rounded tables. Go's
// own conversion repeats each chroma sample instead, which is up to tens of
// levels off at colour edges. Other ratios keep Go's nearest sample.
//
// The IDCT is still Go's, not libjpeg's, so values can differ by a level
// or two where the two inverse transforms round differently.
func jpegRGB(m *image.YCbCr) *image.NRGBA {
	b := m.Bounds()
	w, h := b.Dx(), b.Dy()
	out := image.NewNRGBA(image.Rect(0, 0, w, h))
	cbRow := make([]uint8, w)
	crRow := make([]uint8, w)
	cw := (w + 1) / 2
	for y := 0; y < h; y++ {
		switch m.SubsampleRatio {
		case image.YCbCrSubsampleRatio420:
			ch := (h + 1) / 2
			near := y / 2
			far := near - 1 // output rows 2k lean on chroma row k-1, rows 2k+1 on k+1
			if y%2 == 1 {
				far = near + 1
			}
			far = min(max(far, 0), ch-1)
			h2v2Row(cbRow, m.Cb[near*m.CStride:][:cw], m.Cb[far*m.CStride:][:cw], w)
			h2v2Row(crRow, m.Cr[near*m.CStride:][:cw], m.Cr[far*m.CStride:][:cw], w)
		case image.YCbCrSubsampleRatio422:
			h2v1Row(cbRow, m.Cb[y*m.CStride:][:cw], w)
			h2v1Row(crRow, m.Cr[y*m.CStride:][:cw], w)
		default:
			for x := 0; x < w; x++ {
				ci := m.COffset(b.Min.X+x, b.Min.Y+y)
				cbRow[x], crRow[x] = m.Cb[ci], m.Cr[ci]
			}
		}
		yr := m.Y[m.YOffset(b.Min.X, b.Min.Y+y):][:w]
		dst := out.Pix[y*out.Stride:][:4*w]
		for x := 0; x < w; x++ {
			dst[4*x], dst[4*x+1], dst[4*x+2] = libjpegRGB(yr[x], cbRow[x], crRow[x])
			dst[4*x+3] = 0xff
		}
	}
	return out
}

// h2v2Row upsamples one chroma row pair to one output row of n samples:
// a 3:1 vertical blend of the nearer and farther rows, then a 3:1
// horizontal blend, rounded once at the end (libjpeg's h2v2_fancy_upsample).
func h2v2Row(dst, near, far []uint8, n int) {
	cw := len(near)
	col := func(i int) int { return 3*int(near[i]) + int(far[i]) }
	put := func(x, v int) {
		if x < n {
			dst[x] = uint8(v)
		}
	}
	if cw == 1 {
		put(0, (col(0)*4+8)>>4)
		put(1, (col(0)*4+7)>>4)
		return
	}
	for i := 0; i < cw; i++ {
		this := col(i)
		left, right := this, this // the edges: libjpeg's first/last column rules
		if i > 0 {
			left = col(i - 1)
		}
		if i < cw-1 {
			right = col(i + 1)
		}
		put(2*i, (this*3+left+8)>>4)
		put(2*i+1, (this*3+right+7)>>4)
	}
}

// h2v1Row is libjpeg's h2v1_fancy_upsample: a 3:1 horizontal blend.
func h2v1Row(dst, src []uint8, n int) {
	cw := len(src)
	put := func(x, v int) {
		if x < n {
			dst[x] = uint8(v)
		}
	}
	for i := 0; i < cw; i++ {
		this := int(src[i])
		if i == 0 {
			put(0, this)
		} else {
			put(2*i, (this*3+int(src[i-1])+1)>>2)
		}
		if i == cw-1 {
			put(2*i+1, this)
		} else {
			put(2*i+1, (this*3+int(src[i+1])+2)>>2)
		}
	}
}

// libjpeg's YCbCr->RGB tables (jdcolor.c), 16-bit fixed point.
var jpegTab struct {
	crR, cbB [256]int32
	crG, cbG [256]int32
}

func init() {
	const one = 1 << 16
	fix := func(x float64) int32 { return int32(x*one + 0.5) }
	for i := range 256 {
		x := int32(i - 128)
		jpegTab.crR[i] = (fix(1.40200)*x + one/2) >> 16
		jpegTab.cbB[i] = (fix(1.77200)*x + one/2) >> 16
		jpegTab.crG[i] = -fix(0.71414) * x
		jpegTab.cbG[i] = -fix(0.34414)*x + one/2
	}
}

func libjpegRGB(y, cb, cr uint8) (r, g, b uint8) {
	clip := func(v int32) uint8 { return uint8(min(max(v, 0), 255)) }
	yy := int32(y)
	return clip(yy + jpegTab.crR[cr]), clip(yy + (jpegTab.cbG[cb]+jpegTab.crG[cr])>>16), clip(yy + jpegTab.cbB[cb])
}
