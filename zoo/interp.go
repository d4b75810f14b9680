package zoo

import "math"

// bicubicA is the cubic convolution constant PyTorch's bicubic
// interpolation uses (Keys' kernel with a = -0.75).
const bicubicA = -0.75

// cubicNear is the kernel for the two taps within distance 1 of the sample.
func cubicNear(x float64) float64 {
	return ((bicubicA+2)*x-(bicubicA+3))*x*x + 1
}

// cubicFar is the kernel for the two taps between distance 1 and 2.
func cubicFar(x float64) float64 {
	return ((bicubicA*x-5*bicubicA)*x+8*bicubicA)*x - 4*bicubicA
}

// bicubicMatrix returns the [out, in] row-major matrix M such that M @ v
// resamples a length-in signal v to length out exactly as
// torch.nn.functional.interpolate(mode="bicubic", align_corners=False) does
// along one axis when given a target size: source coordinate
// (dst+0.5)*in/out - 0.5, four taps, indices clamped to the border. A 2-D
// resize is the product of one such matrix per axis, which lets the resize
// run as two matmuls on the tape and get its gradient for free.
func bicubicMatrix(in, out int) []float32 {
	m := make([]float32, out*in)
	scale := float64(in) / float64(out)
	for d := 0; d < out; d++ {
		src := scale*(float64(d)+0.5) - 0.5
		base := math.Floor(src)
		t := src - base
		w := [4]float64{cubicFar(t + 1), cubicNear(t), cubicNear(1 - t), cubicFar(2 - t)}
		for k, wk := range w {
			i := min(max(int(base)-1+k, 0), in-1)
			m[d*in+i] += float32(wk)
		}
	}
	return m
}
