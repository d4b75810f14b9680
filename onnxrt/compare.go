package onnxrt

import (
	"fmt"
	"math"
	"reflect"
	"slices"
)

// Close reports whether got matches want: same element type and shape,
// integers, bools and strings equal, floating-point values within
// |got-want| <= atol + rtol*|want| (NaN matches NaN, infinities must agree).
// Half-precision values are compared after decoding. The error names the
// first mismatching element.
func Close(got, want *Tensor, rtol, atol float64) error {
	if got.DType != want.DType {
		return fmt.Errorf("element type %v, want %v", got.DType, want.DType)
	}
	if !slices.Equal(got.Shape, want.Shape) {
		return fmt.Errorf("shape %v, want %v", got.Shape, want.Shape)
	}
	g, w := floats(got), floats(want)
	if g == nil || w == nil {
		if !reflect.DeepEqual(got.Data, want.Data) {
			return fmt.Errorf("%v values differ", got.DType)
		}
		return nil
	}
	if len(g) != len(w) {
		return fmt.Errorf("%d values, want %d", len(g), len(w))
	}
	for i := range g {
		a, b := g[i], w[i]
		switch {
		case math.IsNaN(a) || math.IsNaN(b):
			if math.IsNaN(a) != math.IsNaN(b) {
				return fmt.Errorf("element %d: got %v, want %v", i, a, b)
			}
		case math.IsInf(a, 0) || math.IsInf(b, 0):
			if a != b {
				return fmt.Errorf("element %d: got %v, want %v", i, a, b)
			}
		case math.Abs(a-b) > atol+rtol*math.Abs(b):
			return fmt.Errorf("element %d: got %v, want %v (|diff| %.3g > %.3g)", i, a, b, math.Abs(a-b), atol+rtol*math.Abs(b))
		}
	}
	return nil
}

// floats widens floating-point data to float64, nil for other types.
func floats(t *Tensor) []float64 {
	var out []float64
	switch d := t.Data.(type) {
	case []float32:
		out = make([]float64, len(d))
		for i, v := range d {
			out[i] = float64(v)
		}
	case []float64:
		out = d
	case []uint16:
		switch t.DType {
		case Float16:
			out = make([]float64, len(d))
			for i, v := range d {
				out[i] = float64(HalfToFloat32(v))
			}
		case BFloat16:
			out = make([]float64, len(d))
			for i, v := range d {
				out[i] = float64(math.Float32frombits(uint32(v) << 16))
			}
		}
	}
	return out
}
