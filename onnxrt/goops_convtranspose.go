package onnxrt

import (
	"fmt"
	"slices"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/tensor"
)

// convTransposeGeometry is ConvTranspose's spatial layout for one input:
// per spatial axis, the input and output sizes, the kernel, stride,
// dilation and the padding taken off the start.
type convTransposeGeometry struct {
	in, out, kernel, stride, dilation, padStart []int
}

// checkConvTranspose refuses, at load time, attribute lists whose lengths
// disagree and auto_pad values the spec does not have.
func checkConvTranspose(n *gnode, _ int64) error {
	switch p := attrString(n, "auto_pad", "NOTSET"); p {
	case "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID":
	default:
		return fmt.Errorf("auto_pad %q is not an ONNX value", p)
	}
	if g := attrInt(n, "group", 1); g < 1 {
		return fmt.Errorf("group %d must be at least 1", g)
	}
	return nil
}

// convTransposeLayout works out the output size as the ONNX spec gives
// it: stride*(in-1) + output_padding + (kernel-1)*dilation + 1 - pads, or,
// with output_shape (or SAME auto_pad), the padding that yields that size.
func convTransposeLayout(n *gnode, in, kernel []int) (convTransposeGeometry, error) {
	d := len(in)
	g := convTransposeGeometry{in: in, kernel: kernel, out: make([]int, d), padStart: make([]int, d)}
	list := func(name string, def int) ([]int, error) {
		v, ok := attrInts(n, name)
		if !ok {
			v = make([]int, d)
			for i := range v {
				v[i] = def
			}
		}
		if len(v) != d {
			return nil, fmt.Errorf("%s %v: want %d values, one per spatial axis", name, v, d)
		}
		return v, nil
	}
	var err error
	if g.stride, err = list("strides", 1); err != nil {
		return g, err
	}
	if g.dilation, err = list("dilations", 1); err != nil {
		return g, err
	}
	outPad, err := list("output_padding", 0)
	if err != nil {
		return g, err
	}
	pads, ok := attrInts(n, "pads")
	if !ok {
		pads = make([]int, 2*d)
	}
	if len(pads) != 2*d {
		return g, fmt.Errorf("pads %v: want %d values", pads, 2*d)
	}
	outShape, haveOut := attrInts(n, "output_shape")
	if haveOut && len(outShape) > d {
		outShape = outShape[len(outShape)-d:] // some writers give N and C too
	}
	autoPad := attrString(n, "auto_pad", "NOTSET")
	for i := range d {
		if g.stride[i] < 1 || g.dilation[i] < 1 || kernel[i] < 1 || outPad[i] < 0 {
			return g, fmt.Errorf("stride %d, dilation %d, kernel %d, output_padding %d on axis %d", g.stride[i], g.dilation[i], kernel[i], outPad[i], i)
		}
		full := g.stride[i]*(in[i]-1) + outPad[i] + (kernel[i]-1)*g.dilation[i] + 1
		want := -1
		switch {
		case haveOut:
			if len(outShape) != d {
				return g, fmt.Errorf("output_shape %v: want %d spatial sizes", outShape, d)
			}
			want = outShape[i]
		case autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER":
			want = in[i] * g.stride[i]
		}
		if want < 0 {
			g.padStart[i] = pads[i]
			g.out[i] = full - pads[i] - pads[i+d]
		} else {
			// The spec's padding; a negative total (a larger output_shape)
			// leaves zero rows, at the end as the reference's floor division
			// puts them.
			total := full - want
			half := floorDiv(total, 2)
			g.padStart[i] = total - half // NOTSET with output_shape, and SAME_LOWER
			if autoPad == "SAME_UPPER" {
				g.padStart[i] = half
			}
			g.out[i] = want
		}
		if g.out[i] < 1 {
			return g, fmt.Errorf("output size %d on axis %d", g.out[i], i)
		}
	}
	return g, nil
}

// convTranspose scatters every input element through the kernel into the
// output: the gradient of Conv with respect to its input. X is
// [N, C, spatial...], W [C, M/group, kernel...], B [M].
func convTranspose(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	xv, wv, bv, err := weightedInputs(n, in)
	if err != nil {
		return nil, err
	}
	x, w := xv.Value, wv.Value
	groups := attrInt(n, "group", 1)
	if len(x.Shape) < 3 || len(w.Shape) != len(x.Shape) {
		return nil, fmt.Errorf("X %v and W %v: want [N, C, spatial...] and [C, M/group, kernel...] of the same rank", x.Shape, w.Shape)
	}
	batch, inC := x.Shape[0], x.Shape[1]
	if inC != w.Shape[0] || inC%groups != 0 {
		return nil, fmt.Errorf("X has %d channels, W %v, group %d", inC, w.Shape, groups)
	}
	kernel := w.Shape[2:]
	if ks, ok := attrInts(n, "kernel_shape"); ok && !slices.Equal(ks, kernel) {
		return nil, fmt.Errorf("kernel_shape %v but W is %v", ks, w.Shape)
	}
	geo, err := convTransposeLayout(n, x.Shape[2:], kernel)
	if err != nil {
		return nil, err
	}
	perGroupOut, perGroupIn := w.Shape[1], inC/groups
	outC := perGroupOut * groups
	if bv != nil && len(bv.Value.Data) != outC {
		return nil, fmt.Errorf("B has %d values for %d output channels", len(bv.Value.Data), outC)
	}
	// output_shape comes from the file: bound what it makes us allocate.
	if _, err := declaredSize(append([]int{batch, outC}, geo.out...)); err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	inSize, outSize, kSize := numel(geo.in), numel(geo.out), numel(kernel)
	y := c.tp.Alloc(append([]int{batch, outC}, geo.out...)...)
	if convTransposeAsBackward(geo, x, w, y, batch, outC, groups) {
		addBias(y.Data, bv, batch, outC, outSize)
		y.Shape = append([]int{batch, outC}, geo.out...)
		return []*gval{fl(y)}, nil
	}
	clear(y.Data)
	d := len(geo.in)
	inIdx, kIdx := make([]int, d), make([]int, d)
	// offsets[k*inSize + p] is where input position p lands through kernel
	// tap k in one output plane, or -1 when it falls in the padding.
	offsets := make([]int, kSize*inSize)
	for k := range kSize {
		unflatten(k, kernel, kIdx)
		for p := range inSize {
			unflatten(p, geo.in, inIdx)
			off := 0
			for a := range d {
				o := inIdx[a]*geo.stride[a] - geo.padStart[a] + kIdx[a]*geo.dilation[a]
				if o < 0 || o >= geo.out[a] {
					off = -1
					break
				}
				off = off*geo.out[a] + o
			}
			offsets[k*inSize+p] = off
		}
	}
	for b := range batch {
		for grp := range groups {
			for ci := range perGroupIn {
				ch := grp*perGroupIn + ci
				xs := x.Data[(b*inC+ch)*inSize:][:inSize]
				for m := range perGroupOut {
					ys := y.Data[(b*outC+grp*perGroupOut+m)*outSize:][:outSize]
					ws := w.Data[(ch*perGroupOut+m)*kSize:][:kSize]
					for k, wk := range ws {
						for p, off := range offsets[k*inSize:][:inSize] {
							if off >= 0 {
								ys[off] += xs[p] * wk
							}
						}
					}
				}
			}
		}
	}
	addBias(y.Data, bv, batch, outC, outSize)
	y.Shape = append([]int{batch, outC}, geo.out...)
	return []*gval{fl(y)}, nil
}

// convTransposeAsBackward computes a 2-D ConvTranspose as what it is, the
// input gradient of the Conv that maps y's shape back to x's (same
// weights, [C, M/group, kH, kW] being that Conv's OIHW), on the tensor
// kernels (oneDNN's backward-data convolution where it loads). Both send
// input position i through tap k to output i*stride - pad + k*dilation;
// the Conv's floor division must give back x's size, which holds for
// output_padding below the stride. It reports false for geometry that Conv
// cannot express (more than 2-D, or padding that breaks the round trip).
func convTransposeAsBackward(geo convTransposeGeometry, x, w, y *tensor.Tensor, batch, outC, groups int) bool {
	if len(geo.in) != 2 {
		return false
	}
	g := tensor.ConvGeom{N: batch, C: outC, H: geo.out[0], W: geo.out[1], O: x.Shape[1], KH: w.Shape[2], KW: w.Shape[3],
		StrideH: geo.stride[0], StrideW: geo.stride[1], PadH: geo.padStart[0], PadW: geo.padStart[1],
		DilationH: geo.dilation[0], DilationW: geo.dilation[1], Groups: groups}
	if g.Validate() != nil || g.OutH() != geo.in[0] || g.OutW() != geo.in[1] {
		return false
	}
	tensor.ConvBackwardData(g, x.Data, w.Data, y.Data, false)
	return true
}

// addBias adds b (one value per channel, nil for none) to every plane of y.
func addBias(y []float32, bv *autograd.Var, batch, channels, plane int) {
	if bv == nil {
		return
	}
	for b := range batch {
		for m, bias := range bv.Value.Data {
			ys := y[(b*channels+m)*plane:][:plane]
			for i := range ys {
				ys[i] += bias
			}
		}
	}
}

// unflatten writes the row-major multi-index of flat position i in shape.
func unflatten(i int, shape, idx []int) {
	for a := len(shape) - 1; a >= 0; a-- {
		idx[a] = i % shape[a]
		i /= shape[a]
	}
}

// floorDiv divides rounding toward minus infinity, as Python's //.
func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
