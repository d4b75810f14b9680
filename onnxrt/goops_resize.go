package onnxrt

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
)

// resizeAttrs are a Resize node's attributes with its opset's defaults.
type resizeAttrs struct {
	mode, coord, nearest, aspect string
	cubicA, extrapolation        float64
	excludeOutside, antialias    bool
	axes                         []int // nil: every axis
}

// resizeAttributes reads and validates a Resize node's attributes. Resize-10
// has only mode; ONNX's 10-to-11 version converter gives it asymmetric
// coordinates and floor rounding, so that is what it means here.
func resizeAttributes(n *gnode, opset int64) (*resizeAttrs, error) {
	a := &resizeAttrs{
		mode:          attrString(n, "mode", "nearest"),
		coord:         attrString(n, "coordinate_transformation_mode", "half_pixel"),
		nearest:       attrString(n, "nearest_mode", "round_prefer_floor"),
		aspect:        attrString(n, "keep_aspect_ratio_policy", "stretch"),
		cubicA:        float64(attrFloat(n, "cubic_coeff_a", -0.75)),
		extrapolation: float64(attrFloat(n, "extrapolation_value", 0)),
	}
	if opset < 11 {
		for name := range n.attrs {
			if name != "mode" {
				return nil, fmt.Errorf("attribute %s is not in Resize-10 (the model imports opset %d)", name, opset)
			}
		}
		a.coord, a.nearest = "asymmetric", "floor"
	}
	if opset < 18 {
		for _, name := range []string{"antialias", "axes", "keep_aspect_ratio_policy"} {
			if _, ok := n.attrs[name]; ok {
				return nil, fmt.Errorf("attribute %s needs opset 18 (the model imports opset %d)", name, opset)
			}
		}
	}
	switch a.mode {
	case "nearest", "linear":
	case "cubic":
		if opset < 11 {
			return nil, errors.New("mode cubic needs opset 11")
		}
	default:
		return nil, fmt.Errorf("mode %q: want nearest, linear or cubic", a.mode)
	}
	switch a.coord {
	case "half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_crop_and_resize":
	case "half_pixel_symmetric":
		if opset < 18 {
			return nil, fmt.Errorf("coordinate_transformation_mode half_pixel_symmetric needs opset 18 (the model imports opset %d)", opset)
		}
	case "tf_half_pixel_for_nn":
		if opset >= 13 {
			return nil, fmt.Errorf("coordinate_transformation_mode tf_half_pixel_for_nn was removed in opset 13 (the model imports opset %d)", opset)
		}
	default:
		return nil, fmt.Errorf("coordinate_transformation_mode %q is not an ONNX value", a.coord)
	}
	switch a.nearest {
	case "round_prefer_floor", "round_prefer_ceil", "floor", "ceil":
	default:
		return nil, fmt.Errorf("nearest_mode %q: want round_prefer_floor, round_prefer_ceil, floor or ceil", a.nearest)
	}
	switch a.aspect {
	case "stretch", "not_larger", "not_smaller":
	default:
		return nil, fmt.Errorf("keep_aspect_ratio_policy %q: want stretch, not_larger or not_smaller", a.aspect)
	}
	for _, f := range []struct {
		name string
		v    *bool
	}{{"exclude_outside", &a.excludeOutside}, {"antialias", &a.antialias}} {
		switch v := attrInt(n, f.name, 0); v {
		case 0, 1:
			*f.v = v == 1
		default:
			return nil, fmt.Errorf("%s %d: want 0 or 1", f.name, v)
		}
	}
	a.axes, _ = attrInts(n, "axes")
	return a, nil
}

func checkResize(n *gnode, opset int64) error {
	if _, err := resizeAttributes(n, opset); err != nil {
		return err
	}
	switch {
	case opset < 11 && len(n.in) > 2:
		return errors.New("Resize-10 takes X and scales only")
	case len(n.in) > 4:
		return fmt.Errorf("%d inputs: want at most X, roi, scales and sizes", len(n.in))
	}
	return nil
}

// resizeGeometry is, per axis of X, the output length, the scale (output
// over input length, for the coordinate transform) and the crop window
// tf_crop_and_resize reads ([0, 1] elsewhere).
type resizeGeometry struct {
	out              []int
	scale            []float64
	roiStart, roiEnd []float64
}

// resizeLayout works the geometry out from scales or sizes over the axes
// they name. With scales an axis is floor(in*scale) long, as ONNX Runtime
// and the reference compute it: neither applies the roi factor the spec's
// formula has.
func resizeLayout(a *resizeAttrs, inShape []int, scales []float32, sizes []int, roi []float32) (*resizeGeometry, error) {
	r := len(inShape)
	var err error
	axes := make([]int, r)
	for i := range axes {
		axes[i] = i
	}
	if a.axes != nil {
		axes = make([]int, len(a.axes))
		seen := make([]bool, r)
		for i, ax := range a.axes {
			if ax, err = normAx(ax, r); err != nil {
				return nil, fmt.Errorf("axes %v: %w", a.axes, err)
			}
			if seen[ax] {
				return nil, fmt.Errorf("axes %v names axis %d twice", a.axes, ax)
			}
			seen[ax] = true
			axes[i] = ax
		}
	}
	g := &resizeGeometry{out: slices.Clone(inShape), scale: make([]float64, r), roiStart: make([]float64, r), roiEnd: make([]float64, r)}
	for i := range r {
		g.scale[i], g.roiEnd[i] = 1, 1
	}
	// A length is refused before it is converted, as an int conversion of
	// a huge float wraps; declaredSize bounds the whole shape later.
	length := func(ax int, v float64) (int, error) {
		if v > float64(maxDeclaredElements) {
			return 0, fmt.Errorf("output: axis %d would be %.4g long, more than %d elements (SSLZOO_MAX_TENSOR_ELEMENTS raises the limit)", ax, v, maxDeclaredElements)
		}
		return int(v), nil
	}
	switch {
	case len(scales) > 0 && len(sizes) > 0:
		return nil, errors.New("both scales and sizes are given; give one of them")
	case len(scales) > 0:
		if len(scales) != len(axes) {
			return nil, fmt.Errorf("%d scales for %d axes", len(scales), len(axes))
		}
		for i, ax := range axes {
			s := float64(scales[i])
			if !(s > 0) || math.IsInf(s, 0) {
				return nil, fmt.Errorf("scale %v on axis %d: want a positive finite value", scales[i], ax)
			}
			g.scale[ax] = s
			if g.out[ax], err = length(ax, math.Floor(s*float64(inShape[ax]))); err != nil {
				return nil, err
			}
		}
	case len(sizes) > 0:
		if len(sizes) != len(axes) {
			return nil, fmt.Errorf("%d sizes for %d axes", len(sizes), len(axes))
		}
		for i, ax := range axes {
			switch {
			case sizes[i] < 0:
				return nil, fmt.Errorf("size %d on axis %d is negative", sizes[i], ax)
			case inShape[ax] == 0 && sizes[i] > 0:
				return nil, fmt.Errorf("axis %d is empty and cannot be resized to %d", ax, sizes[i])
			case inShape[ax] > 0:
				g.scale[ax] = float64(sizes[i]) / float64(inShape[ax])
			}
			g.out[ax] = sizes[i]
		}
		if a.aspect != "stretch" {
			// One scale for every named axis, the smallest (not_larger) or
			// largest (not_smaller), with lengths rounded half up.
			s := math.Inf(1)
			if a.aspect == "not_smaller" {
				s = math.Inf(-1)
			}
			for _, ax := range axes {
				switch {
				case inShape[ax] == 0:
				case a.aspect == "not_larger":
					s = min(s, g.scale[ax])
				default:
					s = max(s, g.scale[ax])
				}
			}
			for _, ax := range axes {
				if inShape[ax] > 0 {
					g.scale[ax] = s
					if g.out[ax], err = length(ax, math.Floor(s*float64(inShape[ax])+0.5)); err != nil {
						return nil, err
					}
				}
			}
		}
	default:
		return nil, errors.New("neither scales nor sizes is given")
	}
	if a.coord == "tf_crop_and_resize" {
		if len(roi) != 2*len(axes) {
			return nil, fmt.Errorf("tf_crop_and_resize needs roi with %d values (starts, then ends, of the resized axes), got %d", 2*len(axes), len(roi))
		}
		for i, ax := range axes {
			g.roiStart[ax], g.roiEnd[ax] = float64(roi[i]), float64(roi[len(axes)+i])
		}
	}
	return g, nil
}

// resizeTaps is how one axis is resampled: output position o reads the
// input positions idx[o*k:][:k] with weights w[o*k:][:k], or, where
// outside[o] (tf_crop_and_resize past the input), the extrapolation value.
type resizeTaps struct {
	k       int
	idx     []int
	w       []float32
	outside []bool
}

// resizeSource maps output position x on an axis of length in to the
// input, as coordinate_transformation_mode says. The modes that divide by
// the output length take it as scale*in, as ONNX's reference and node
// tests do (ONNX Runtime takes the integer length and fails two of those
// tests); whether the output is a single position is, as in the spec, a
// question about the integer length.
func resizeSource(a *resizeAttrs, x float64, in, out int, scale, roiStart, roiEnd float64) float64 {
	length := scale * float64(in)
	switch a.coord {
	case "half_pixel_symmetric":
		// Centres the integer output on the input, not just its origin.
		offset := float64(in) / 2 * (1 - float64(out)/length)
		return offset + (x+0.5)/scale - 0.5
	case "pytorch_half_pixel":
		if out == 1 {
			return 0
		}
		return (x+0.5)/scale - 0.5
	case "align_corners":
		if out == 1 {
			return 0
		}
		return x * float64(in-1) / (length - 1)
	case "asymmetric":
		return x / scale
	case "tf_half_pixel_for_nn":
		return (x + 0.5) / scale
	case "tf_crop_and_resize":
		span := (roiEnd - roiStart) * float64(in-1)
		if out == 1 {
			return span/2 + roiStart*float64(in-1)
		}
		return x*span/(length-1) + roiStart*float64(in-1)
	}
	return (x+0.5)/scale - 0.5 // half_pixel
}

// resizeKernel is mode's interpolation kernel and its radius in input
// positions.
func resizeKernel(a *resizeAttrs) (func(d float64) float64, float64) {
	if a.mode == "linear" {
		return func(d float64) float64 { return max(0, 1-math.Abs(d)) }, 1
	}
	c := a.cubicA // Keys' cubic convolution with coefficient A
	return func(d float64) float64 {
		d = math.Abs(d)
		switch {
		case d <= 1:
			return ((c+2)*d-(c+3))*d*d + 1
		case d < 2:
			return ((c*d-5*c)*d+8*c)*d - 4*c
		}
		return 0
	}, 2
}

// axisTaps computes the taps of one axis. It reports false when they are
// the identity, so that the axis needs no pass.
func axisTaps(a *resizeAttrs, in, out int, scale, roiStart, roiEnd float64) (*resizeTaps, bool) {
	t := &resizeTaps{k: 1}
	var kernel func(float64) float64
	var start int
	stretch := 1.0
	if a.mode != "nearest" { // antialias is for linear and cubic only
		var radius float64
		kernel, radius = resizeKernel(a)
		if a.antialias && scale < 1 {
			stretch = scale // the kernel widens by 1/scale when downsampling
		}
		start = int(math.Floor(-radius/stretch)) + 1
		t.k = 2 - 2*start
	}
	t.idx, t.w = make([]int, out*t.k), make([]float32, out*t.k)
	w := make([]float64, t.k)
	identity := in == out
	last := float64(in - 1)
	for o := range out {
		x := resizeSource(a, float64(o), in, out, scale, roiStart, roiEnd)
		if a.coord == "tf_crop_and_resize" && !(x >= 0 && x <= last) {
			if t.outside == nil {
				t.outside = make([]bool, out)
			}
			t.outside[o], identity = true, false
			continue
		}
		// Past the kernel's reach every index clamps to an edge anyway;
		// bounding x keeps the conversion to int defined.
		x = min(max(x, -float64(t.k)-2), float64(in+t.k+1))
		// x = base + ratio with ratio in (0, 1]: an integer x is base+1.
		base := math.Ceil(x) - 1
		ratio := x - base
		idx, ws := t.idx[o*t.k:][:t.k], t.w[o*t.k:][:t.k]
		if a.mode == "nearest" {
			up := ratio == 1
			switch a.nearest {
			case "round_prefer_floor":
				up = ratio > 0.5
			case "round_prefer_ceil":
				up = ratio >= 0.5
			case "ceil":
				up = true
			}
			p := int(base)
			if up {
				p++
			}
			idx[0], ws[0] = min(max(p, 0), in-1), 1
			identity = identity && idx[0] == o
			continue
		}
		sum := 0.0
		for j := range t.k {
			p := int(base) + start + j
			w[j] = kernel(stretch * (float64(start+j) - ratio))
			if a.excludeOutside && (p < 0 || p >= in) {
				w[j] = 0
			}
			sum += w[j]
			// Edge padding. Where x lies past an edge (align_corners with a
			// scale that does not divide the length) the reference instead
			// shifts its window inward; clamping keeps each weight with its
			// own distance, as ONNX Runtime does.
			idx[j] = min(max(p, 0), in-1)
		}
		if sum == 0 {
			sum = 1
		}
		for j := range t.k {
			ws[j] = float32(w[j] / sum)
			identity = identity && (ws[j] == 0 || (idx[j] == o && ws[j] == 1))
		}
	}
	return t, !identity
}

// resampleAxis resamples src, of the given shape, along axis into dst
// through taps t.
func resampleAxis(dst, src []float32, shape []int, axis int, t *resizeTaps, extrapolation float32) {
	outer, in, inner := numel(shape[:axis]), shape[axis], numel(shape[axis+1:])
	out := len(t.idx) / t.k
	for b := range outer {
		s, d := src[b*in*inner:][:in*inner], dst[b*out*inner:][:out*inner]
		for o := range out {
			row := d[o*inner:][:inner]
			idx, ws := t.idx[o*t.k:][:t.k], t.w[o*t.k:][:t.k]
			switch {
			case t.outside != nil && t.outside[o]:
				for i := range row {
					row[i] = extrapolation
				}
			case inner == 1:
				var v float32
				for j, p := range idx {
					v += ws[j] * s[p]
				}
				row[0] = v
			case t.k == 1:
				copy(row, s[idx[0]*inner:][:inner])
			default:
				clear(row)
				for j, p := range idx {
					if w := ws[j]; w != 0 {
						for i, v := range s[p*inner:][:inner] {
							row[i] += w * v
						}
					}
				}
			}
		}
	}
}

// optionalFloats is float32 input i's data, nil when it is absent or
// empty (opset 11 writers pass an empty scales or roi to leave it out).
func optionalFloats(in []*gval, i int) ([]float32, error) {
	if i >= len(in) || in[i] == nil {
		return nil, nil
	}
	if in[i].f == nil {
		return nil, fmt.Errorf("input %d must be float32", i)
	}
	return in[i].f.Data, nil
}

// resize is ONNX Resize on float32 data: separable nearest, N-D linear
// or cubic resampling, one pass per axis that changes, shrinking axes
// first so that later passes have less to read.
func resize(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	a, err := resizeAttributes(n, c.opset)
	if err != nil {
		return nil, err
	}
	xv, err := float(n, in, 0)
	if err != nil {
		return nil, err
	}
	x := xv.Value
	scalesAt := 2
	if c.opset < 11 {
		scalesAt = 1 // Resize-10 is (X, scales)
	}
	scales, err := optionalFloats(in, scalesAt)
	if err != nil {
		return nil, err
	}
	var roi []float32
	var sizes []int
	if c.opset >= 11 {
		if roi, err = optionalFloats(in, 1); err != nil {
			return nil, err
		}
		if sizes, _, err = ints(in, 3); err != nil {
			return nil, err
		}
	}
	g, err := resizeLayout(a, x.Shape, scales, sizes, roi)
	if err != nil {
		return nil, err
	}
	// scales and sizes come from the file: bound what they make us allocate.
	total, err := declaredSize(g.out)
	if err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	if total == 0 {
		return []*gval{fl(c.tp.Alloc(g.out...))}, nil
	}
	type pass struct {
		axis int
		taps *resizeTaps
	}
	var passes []pass
	for ax, inLen := range x.Shape {
		if t, ok := axisTaps(a, inLen, g.out[ax], g.scale[ax], g.roiStart[ax], g.roiEnd[ax]); ok {
			passes = append(passes, pass{ax, t})
		}
	}
	if len(passes) == 0 {
		return []*gval{in[0]}, nil
	}
	// Among equal ratios the innermost axis goes first: its pass works
	// element by element, the others copy or blend whole rows.
	ratio := func(p pass) float64 { return float64(g.out[p.axis]) / float64(x.Shape[p.axis]) }
	slices.SortFunc(passes, func(p, q pass) int {
		return cmp.Or(cmp.Compare(ratio(p), ratio(q)), cmp.Compare(q.axis, p.axis))
	})
	shape, cur := slices.Clone(x.Shape), x.Data
	var scratch []float32 // the intermediate cur holds, ours to release
	y := c.tp.Alloc(g.out...)
	for i, p := range passes {
		next := slices.Clone(shape)
		next[p.axis] = g.out[p.axis]
		dst := y.Data
		if i < len(passes)-1 {
			dst = c.tp.Scratch(numel(next))
		}
		resampleAxis(dst, cur, shape, p.axis, p.taps, float32(a.extrapolation))
		if scratch != nil {
			c.tp.Release(scratch)
		}
		scratch, cur, shape = dst, dst, next
	}
	return []*gval{fl(y)}, nil
}
