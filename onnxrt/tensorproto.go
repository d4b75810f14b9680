package onnxrt

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/sslzoo/sslzoo/export/onnxpb"
)

// TensorFromProto decodes an ONNX TensorProto held in memory (raw_data or
// the typed repeated fields; not external data) into a Tensor.
func TensorFromProto(tp *onnxpb.TensorProto) (*Tensor, error) {
	if tp.GetDataLocation() == onnxpb.TensorProto_EXTERNAL || len(tp.GetExternalData()) > 0 {
		return nil, fmt.Errorf("tensor %q: external data must be resolved by the caller", tp.GetName())
	}
	shape := make([]int, len(tp.GetDims()))
	for i, d := range tp.GetDims() {
		if d < 0 {
			return nil, fmt.Errorf("tensor %q: negative dimension in %v", tp.GetName(), tp.GetDims())
		}
		shape[i] = int(d)
	}
	dt := DType(tp.GetDataType())
	raw := tp.GetRawData()
	hasRaw := tp.RawData != nil
	// Every allocation below is sized by the declared shape, so the shape is
	// first held to the values the file really carries: a 2^40-element
	// declaration with no data is an error here, not an out-of-memory crash.
	n, ok := checkedNumel(shape)
	if !ok {
		return nil, fmt.Errorf("tensor %q: shape %v has too many elements to hold in memory", tp.GetName(), shape)
	}
	if hasRaw && dt != String {
		if size := dt.Size(); size == 0 || n > len(raw)/size || len(raw) != n*size {
			return nil, fmt.Errorf("tensor %q: %v %v needs %d elements of raw_data, has %d bytes", tp.GetName(), dt, shape, n, len(raw))
		}
	} else if got, known := typedLen(tp, dt); known && got != n {
		return nil, fmt.Errorf("tensor %q: %v %v needs %d values, the file holds %d", tp.GetName(), dt, shape, n, got)
	}
	t := &Tensor{DType: dt, Shape: shape}
	// count checks a typed field's length.
	count := func(got int) error {
		if got != n {
			return fmt.Errorf("tensor %q: %v %v needs %d values, has %d", tp.GetName(), dt, shape, n, got)
		}
		return nil
	}
	var err error
	switch dt {
	case Float32:
		v := make([]float32, n)
		if hasRaw {
			for i := range v {
				v[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			}
		} else if err = count(len(tp.GetFloatData())); err == nil {
			copy(v, tp.GetFloatData())
		}
		t.Data = v
	case Float64:
		v := make([]float64, n)
		if hasRaw {
			for i := range v {
				v[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
			}
		} else if err = count(len(tp.GetDoubleData())); err == nil {
			copy(v, tp.GetDoubleData())
		}
		t.Data = v
	case Int64:
		v := make([]int64, n)
		if hasRaw {
			for i := range v {
				v[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
			}
		} else if err = count(len(tp.GetInt64Data())); err == nil {
			copy(v, tp.GetInt64Data())
		}
		t.Data = v
	case Uint64, Uint32:
		v := make([]uint64, n)
		if hasRaw {
			for i := range v {
				if dt == Uint64 {
					v[i] = binary.LittleEndian.Uint64(raw[8*i:])
				} else {
					v[i] = uint64(binary.LittleEndian.Uint32(raw[4*i:]))
				}
			}
		} else if err = count(len(tp.GetUint64Data())); err == nil {
			copy(v, tp.GetUint64Data())
		}
		if dt == Uint64 {
			t.Data = v
		} else {
			u := make([]uint32, n)
			for i, e := range v {
				u[i] = uint32(e)
			}
			t.Data = u
		}
	case Int32, Int16, Uint16, Int8, Uint8, Bool, Float16, BFloat16:
		// The narrow types travel in int32_data, one value per entry.
		v := make([]int32, n)
		if hasRaw {
			w := dt.Size()
			for i := range v {
				switch w {
				case 4:
					v[i] = int32(binary.LittleEndian.Uint32(raw[4*i:]))
				case 2:
					v[i] = int32(binary.LittleEndian.Uint16(raw[2*i:]))
				case 1:
					v[i] = int32(raw[i])
				}
			}
		} else if err = count(len(tp.GetInt32Data())); err == nil {
			copy(v, tp.GetInt32Data())
		}
		t.Data = narrow(dt, v)
	case String:
		if err = count(len(tp.GetStringData())); err == nil {
			v := make([]string, n)
			for i, b := range tp.GetStringData() {
				v[i] = string(b)
			}
			t.Data = v
		}
	default:
		return nil, fmt.Errorf("tensor %q: element type %v is not supported", tp.GetName(), dt)
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

// narrow converts int32_data / widened raw values to the Go slice of dt.
func narrow(dt DType, v []int32) any {
	switch dt {
	case Int32:
		return v
	case Int16:
		o := make([]int16, len(v))
		for i, e := range v {
			o[i] = int16(e)
		}
		return o
	case Uint16, Float16, BFloat16:
		o := make([]uint16, len(v))
		for i, e := range v {
			o[i] = uint16(e)
		}
		return o
	case Int8:
		o := make([]int8, len(v))
		for i, e := range v {
			o[i] = int8(e)
		}
		return o
	case Uint8:
		o := make([]uint8, len(v))
		for i, e := range v {
			o[i] = uint8(e)
		}
		return o
	case Bool:
		o := make([]bool, len(v))
		for i, e := range v {
			o[i] = e != 0
		}
		return o
	}
	return nil
}

// checkedNumel is the element count of shape, or false when the product
// does not fit in an int.
func checkedNumel(shape []int) (int, bool) {
	n := 1
	for _, d := range shape {
		if d != 0 && n > math.MaxInt/d {
			return 0, false
		}
		n *= d
	}
	return n, true
}

// typedLen is how many values tp carries in the typed field that holds
// dt, when dt is a type TensorFromProto reads.
func typedLen(tp *onnxpb.TensorProto, dt DType) (int, bool) {
	switch dt {
	case Float32:
		return len(tp.GetFloatData()), true
	case Float64:
		return len(tp.GetDoubleData()), true
	case Int64:
		return len(tp.GetInt64Data()), true
	case Uint64, Uint32:
		return len(tp.GetUint64Data()), true
	case Int32, Int16, Uint16, Int8, Uint8, Bool, Float16, BFloat16:
		return len(tp.GetInt32Data()), true
	case String:
		return len(tp.GetStringData()), true
	}
	return 0, false
}
