package onnxrt

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/sslzoo/sslzoo/tensor"
)

// QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear, the ops of a
// QDQ (quantize-dequantize) model. The Go engine runs them as the ONNX
// reference formulas in float32 and int64: a quantized model gives ONNX
// Runtime's numbers here, though none of its int8 speed (the Conv and
// MatMul between the pairs still run in float32).

// checkQDQ refuses attributes the engine does not implement: blocked
// quantization (opset 21). saturate (opset 19) concerns float8 outputs
// only, which quantizeTypes refuses.
func checkQDQ(n *gnode, _ int64) error {
	for k, a := range n.attrs {
		switch k {
		case "axis", "saturate", "output_dtype":
		case "block_size":
			if a.GetI() != 0 {
				return errors.New("blocked quantization (block_size) is not supported by the Go engine")
			}
		default:
			return fmt.Errorf("attribute %s is not supported", k)
		}
	}
	return nil
}

// quantizeTypes: float32 (or int32) in, int8 or uint8 out, as the zero
// point says (uint8 when it is absent, unless opset 21's output_dtype).
func quantizeTypes(n *gnode, in []DType) ([]DType, error) {
	if len(in) < 2 {
		return nil, errors.New("QuantizeLinear needs x and y_scale")
	}
	if in[0] != Float32 && in[0] != Int32 {
		return nil, fmt.Errorf("input x is %v; the Go engine quantizes float32 and int32", in[0])
	}
	if in[1] != Float32 {
		return nil, fmt.Errorf("y_scale is %v; the Go engine takes float32 scales only", in[1])
	}
	out := DType(attrInt(n, "output_dtype", 0))
	if len(in) > 2 && in[2] != 0 {
		if out != 0 && out != in[2] {
			return nil, fmt.Errorf("output_dtype %v differs from the zero point's %v", out, in[2])
		}
		out = in[2]
	}
	if out == 0 {
		out = Uint8
	}
	if out != Int8 && out != Uint8 {
		return nil, fmt.Errorf("QuantizeLinear to %v: the Go engine quantizes to int8 and uint8 only", out)
	}
	return []DType{out}, nil
}

// dequantizeTypes: int8, uint8 or int32 in, float32 out.
func dequantizeTypes(_ *gnode, in []DType) ([]DType, error) {
	if len(in) < 2 {
		return nil, errors.New("DequantizeLinear needs x and x_scale")
	}
	if in[0] != Int8 && in[0] != Uint8 && in[0] != Int32 {
		return nil, fmt.Errorf("input x is %v; the Go engine dequantizes int8, uint8 and int32", in[0])
	}
	if in[1] != Float32 {
		return nil, fmt.Errorf("x_scale is %v; the Go engine takes float32 scales only", in[1])
	}
	if len(in) > 2 && in[2] != 0 && in[2] != in[0] {
		return nil, fmt.Errorf("zero point is %v, x is %v", in[2], in[0])
	}
	return []DType{Float32}, nil
}

// qgrid is where a QDQ node's scale and zero point apply: element k of x
// uses entry (k/inner)%ch, so per tensor is ch 1.
type qgrid struct {
	scale []float32
	zero  []int64 // nil: all 0
	ch    int
	inner int
}

func (g *qgrid) at(k int) (float32, int64) {
	c := (k / g.inner) % g.ch
	if g.zero == nil {
		return g.scale[c], 0
	}
	return g.scale[c], g.zero[c]
}

// qdqGrid reads inputs 1 (scale) and 2 (zero point) against x's shape: a
// one-value scale is per tensor; a 1-D one (opset 13) runs along axis.
func qdqGrid(c *gctx, n *gnode, in []*gval, shape []int) (*qgrid, error) {
	sv, err := need(n, in, 1)
	if err != nil {
		return nil, err
	}
	if sv.f == nil {
		return nil, errors.New("the scale must be float32")
	}
	g := &qgrid{scale: sv.f.Data, ch: 1, inner: max(numel(shape), 1)}
	if len(in) > 2 && in[2] != nil {
		if in[2].i == nil {
			return nil, errors.New("the zero point must be an integer tensor")
		}
		if len(in[2].i.data) != len(g.scale) {
			return nil, fmt.Errorf("zero point shape %v differs from the scale's %v", in[2].i.shape, sv.f.Shape)
		}
		g.zero = in[2].i.data
	}
	if len(g.scale) == 1 && len(sv.f.Shape) <= 1 {
		return g, nil
	}
	if c.opset < 13 || len(sv.f.Shape) != 1 {
		return nil, fmt.Errorf("scale of shape %v: want a scalar, or a 1-D tensor along axis (opset 13)", sv.f.Shape)
	}
	ax, err := normAx(attrInt(n, "axis", 1), len(shape))
	if err != nil {
		return nil, err
	}
	if shape[ax] != len(g.scale) {
		return nil, fmt.Errorf("%d scales for axis %d of %v", len(g.scale), ax, shape)
	}
	g.ch, g.inner = shape[ax], numel(shape[ax+1:])
	return g, nil
}

// quantRange is the saturation range of t.
func quantRange(t DType) (lo, hi float64) {
	if t == Int8 {
		return -128, 127
	}
	return 0, 255
}

// quantize is saturate(round_half_even(q) + zero); NaN, which has no
// integer, becomes the zero point.
func quantize(q float64, zero int64, lo, hi float64) int64 {
	if q != q {
		return zero
	}
	return int64(min(max(math.RoundToEven(q)+float64(zero), lo), hi))
}

func quantizeLinear(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	g, err := qdqGrid(c, n, in, x.shape())
	if err != nil {
		return nil, err
	}
	lo, hi := quantRange(n.outType(0))
	var out []int64
	if x.f != nil {
		out = make([]int64, len(x.f.Data))
		for k, v := range x.f.Data {
			s, z := g.at(k)
			out[k] = quantize(float64(v/s), z, lo, hi) // the division in float32, as ORT's
		}
	} else {
		out = make([]int64, len(x.i.data))
		for k, v := range x.i.data {
			s, z := g.at(k)
			out[k] = quantize(float64(v)/float64(s), z, lo, hi)
		}
	}
	return iv(slices.Clone(x.shape()), out), nil
}

func dequantizeLinear(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	if x.i == nil {
		return nil, errors.New("input x must be an integer tensor")
	}
	g, err := qdqGrid(c, n, in, x.i.shape)
	if err != nil {
		return nil, err
	}
	out := c.tp.Alloc(x.i.shape...)
	for k, v := range x.i.data {
		s, z := g.at(k)
		out.Data[k] = float32(v-z) * s
	}
	out.Shape = slices.Clone(x.i.shape)
	return []*gval{fl(out)}, nil
}

// dynamicQuantizeTypes: float32 in; uint8 y, float32 scale, uint8 zero point.
func dynamicQuantizeTypes(_ *gnode, in []DType) ([]DType, error) {
	if len(in) < 1 || in[0] != Float32 {
		return nil, fmt.Errorf("input x is %v, want float32", in)
	}
	return []DType{Uint8, Float32, Uint8}, nil
}

// dynamicQuantizeLinear quantizes x to uint8 over its own range, widened
// to hold 0, as the ONNX spec's formula (scale (max-min)/255, zero point
// round(-min/scale) saturated).
func dynamicQuantizeLinear(_ *gctx, n *gnode, in []*gval) ([]*gval, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	if x.f == nil {
		return nil, errors.New("input x must be float32")
	}
	lo, hi := float32(0), float32(0)
	for _, v := range x.f.Data {
		lo, hi = min(lo, v), max(hi, v)
	}
	scale := (hi - lo) / 255
	zero := quantize(float64(-lo/scale), 0, 0, 255)
	y := make([]int64, len(x.f.Data))
	for k, v := range x.f.Data {
		y[k] = quantize(float64(v/scale), zero, 0, 255)
	}
	return []*gval{
		{i: &itensor{shape: slices.Clone(x.f.Shape), data: y}},
		{f: &tensor.Tensor{Shape: []int{}, Data: []float32{scale}}},
		{i: &itensor{shape: []int{}, data: []int64{zero}}},
	}, nil
}
