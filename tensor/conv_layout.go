package tensor

// ConvPost is what an inference convolution (PackedConv) applies after its
// bias, as oneDNN post-ops in the same pass over the output.
type ConvPost uint8

const (
	// PostSum adds the output buffer's previous contents: a residual
	// Add fused into the convolution that feeds it.
	PostSum ConvPost = 2
	// PostRelu clears negatives, after the sum when both are set.
	PostRelu ConvPost = 1
	// PostGELU applies the exact (erf) GELU, after the sum when both are
	// set; it is not combined with PostRelu.
	PostGELU ConvPost = 4
)

// ConvLayout says how a PackedConv's input and output lie in memory. The
// shapes stay NCHW; an NHWC side holds the same values with the channel
// axis innermost, which is what oneDNN's fastest kernels read and write,
// so consecutive convolutions pass it on without reordering.
type ConvLayout uint8

const (
	SrcNHWC ConvLayout = 1 // the input is NHWC
	DstNHWC ConvLayout = 2 // the output is NHWC
)

// NCHWToNHWC writes src (n images of c channels of hw pixels each, NCHW)
// into dst in NHWC order.
func NCHWToNHWC(dst, src []float32, n, c, hw int) { transposeImages(dst, src, n, c, hw) }

// NHWCToNCHW is the inverse of NCHWToNHWC.
func NHWCToNCHW(dst, src []float32, n, c, hw int) { transposeImages(dst, src, n, hw, c) }

// transposeImages transposes each of n row-major rows×cols matrices of src
// into dst, in square tiles so that both sides stay in cache lines.
func transposeImages(dst, src []float32, n, rows, cols int) {
	per := rows * cols
	mustLen("transpose source", src, n*per)
	mustLen("transpose destination", dst, n*per)
	const tile = 16
	rowTiles := (rows + tile - 1) / tile
	Parallel(n*rowTiles, tile*cols, func(lo, hi int) { // cost: one band of rows
		for t := lo; t < hi; t++ {
			img, r0 := t/rowTiles, (t%rowTiles)*tile
			s, d := src[img*per:(img+1)*per], dst[img*per:(img+1)*per]
			r1 := min(r0+tile, rows)
			for c0 := 0; c0 < cols; c0 += tile {
				c1 := min(c0+tile, cols)
				for r := r0; r < r1; r++ {
					row := s[r*cols : r*cols+cols]
					for c := c0; c < c1; c++ {
						d[c*rows+r] = row[c]
					}
				}
			}
		}
	})
}
