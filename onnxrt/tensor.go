package onnxrt

import (
	"fmt"
	"math"
	"slices"
)

// DType is a tensor element type, numbered as ONNX's TensorProto.DataType.
type DType int32

// The element types ONNX Runtime can exchange with Go.
const (
	Float32  DType = 1
	Uint8    DType = 2
	Int8     DType = 3
	Uint16   DType = 4
	Int16    DType = 5
	Int32    DType = 6
	Int64    DType = 7
	String   DType = 8
	Bool     DType = 9
	Float16  DType = 10 // Data is []uint16 holding IEEE half bit patterns
	Float64  DType = 11
	Uint32   DType = 12
	Uint64   DType = 13
	BFloat16 DType = 16 // Data is []uint16 holding bfloat16 bit patterns
)

var dtypeNames = map[DType]string{
	Float32: "float32", Uint8: "uint8", Int8: "int8", Uint16: "uint16", Int16: "int16",
	Int32: "int32", Int64: "int64", String: "string", Bool: "bool", Float16: "float16",
	Float64: "float64", Uint32: "uint32", Uint64: "uint64", BFloat16: "bfloat16",
}

func (d DType) String() string {
	if s, ok := dtypeNames[d]; ok {
		return s
	}
	return fmt.Sprintf("dtype(%d)", int32(d))
}

// Size is the width of one element in bytes (0 for String and unknown types).
func (d DType) Size() int {
	switch d {
	case Uint8, Int8, Bool:
		return 1
	case Uint16, Int16, Float16, BFloat16:
		return 2
	case Float32, Int32, Uint32:
		return 4
	case Int64, Float64, Uint64:
		return 8
	}
	return 0
}

// Tensor is a dense row-major tensor. Data is a slice whose Go type matches
// DType: []float32, []float64, []int8 ... []uint64, []bool or []string;
// Float16 and BFloat16 travel as []uint16 bit patterns. A scalar has an
// empty Shape and one element.
type Tensor struct {
	DType DType
	Shape []int
	Data  any
}

// Elem lists the Go element types a Tensor can hold.
type Elem interface {
	~float32 | ~float64 | ~int8 | ~uint8 | ~int16 | ~uint16 | ~int32 | ~uint32 | ~int64 | ~uint64 | ~bool | ~string
}

// NewTensor wraps data (not copied) as a tensor of the given shape; the
// element type follows from T (uint16 means Uint16; set DType to Float16 or
// BFloat16 afterwards for half-precision bit patterns).
func NewTensor[T Elem](shape []int, data []T) *Tensor {
	var d DType
	switch any(data).(type) {
	case []float32:
		d = Float32
	case []float64:
		d = Float64
	case []int8:
		d = Int8
	case []uint8:
		d = Uint8
	case []int16:
		d = Int16
	case []uint16:
		d = Uint16
	case []int32:
		d = Int32
	case []uint32:
		d = Uint32
	case []int64:
		d = Int64
	case []uint64:
		d = Uint64
	case []bool:
		d = Bool
	case []string:
		d = String
	}
	return &Tensor{DType: d, Shape: slices.Clone(shape), Data: data}
}

// Len is the number of elements in Data.
func (t *Tensor) Len() int {
	switch d := t.Data.(type) {
	case []float32:
		return len(d)
	case []float64:
		return len(d)
	case []int8:
		return len(d)
	case []uint8:
		return len(d)
	case []int16:
		return len(d)
	case []uint16:
		return len(d)
	case []int32:
		return len(d)
	case []uint32:
		return len(d)
	case []int64:
		return len(d)
	case []uint64:
		return len(d)
	case []bool:
		return len(d)
	case []string:
		return len(d)
	}
	return -1
}

// numel is the element count a shape implies.
func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// goTypeMatches reports whether Data's Go type is the one DType needs.
func (t *Tensor) goTypeMatches() bool {
	switch t.Data.(type) {
	case []float32:
		return t.DType == Float32
	case []float64:
		return t.DType == Float64
	case []int8:
		return t.DType == Int8
	case []uint8:
		return t.DType == Uint8
	case []int16:
		return t.DType == Int16
	case []uint16:
		return t.DType == Uint16 || t.DType == Float16 || t.DType == BFloat16
	case []int32:
		return t.DType == Int32
	case []uint32:
		return t.DType == Uint32
	case []int64:
		return t.DType == Int64
	case []uint64:
		return t.DType == Uint64
	case []bool:
		return t.DType == Bool
	case []string:
		return t.DType == String
	}
	return false
}

// Validate checks that the tensor is well formed: known element type, Data
// of the matching Go type, non-negative dims and an element count that
// matches the shape.
func (t *Tensor) Validate() error {
	if t == nil {
		return fmt.Errorf("nil tensor")
	}
	if _, ok := dtypeNames[t.DType]; !ok {
		return fmt.Errorf("unsupported element type %v", t.DType)
	}
	if !t.goTypeMatches() {
		return fmt.Errorf("element type %v with data of Go type %T", t.DType, t.Data)
	}
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("shape %v has a negative dimension", t.Shape)
		}
	}
	if n := numel(t.Shape); n != t.Len() {
		return fmt.Errorf("shape %v needs %d elements, data has %d", t.Shape, n, t.Len())
	}
	return nil
}

// Float32s returns Data as []float32, or an error naming the actual type.
func (t *Tensor) Float32s() ([]float32, error) {
	d, ok := t.Data.([]float32)
	if !ok || t.DType != Float32 {
		return nil, fmt.Errorf("tensor is %v %v, not float32", t.DType, t.Shape)
	}
	return d, nil
}

// HalfToFloat32 decodes an IEEE 754 binary16 bit pattern.
func HalfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf / nan
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: value is frac * 2^-24
		v := float32(frac) * (1.0 / (1 << 24))
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
}
