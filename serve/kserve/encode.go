package kserve

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/sslzoo/sslzoo/internal/oneline"
	"github.com/sslzoo/sslzoo/onnxrt"
)

// AppendResponse appends r to buf: the JSON response, then the binary data
// of the outputs marked Binary, in order. It returns the extended buffer
// and the JSON part's length, which goes in the Inference-Header-Content-
// Length header when any output is binary.
func AppendResponse(buf []byte, r *Response) ([]byte, int, error) {
	start := len(buf)
	buf = append(buf, `{"model_name":`...)
	buf = appendString(buf, r.ModelName)
	if r.ModelVersion != "" {
		buf = append(buf, `,"model_version":`...)
		buf = appendString(buf, r.ModelVersion)
	}
	if r.ID != "" {
		buf = append(buf, `,"id":`...)
		buf = appendString(buf, r.ID)
	}
	buf = append(buf, `,"outputs":[`...)
	for i, o := range r.Outputs {
		if i > 0 {
			buf = append(buf, ',')
		}
		var err error
		if buf, err = appendTensorHeader(buf, o.Name, o.Tensor, o.Binary, o.Parameters); err != nil {
			return nil, 0, fmt.Errorf("output %q: %w", o.Name, err)
		}
		if !o.Binary {
			buf = append(buf, `,"data":`...)
			if buf, err = appendJSONData(buf, o.Tensor); err != nil {
				return nil, 0, fmt.Errorf("output %q: %w", o.Name, err)
			}
		}
		buf = append(buf, '}')
	}
	buf = append(buf, "]}"...)
	jsonLen := len(buf) - start
	for _, o := range r.Outputs {
		if o.Binary {
			buf = appendBinary(buf, o.Tensor)
		}
	}
	return buf, jsonLen, nil
}

// EncodeRequest writes an inference request as a client sends it: JSON,
// then the binary data of the inputs marked Binary. headerLen is the JSON
// part's length (send it as Inference-Header-Content-Length when it is
// shorter than the body).
func EncodeRequest(r *Request) (body []byte, headerLen int, err error) {
	buf := []byte(`{`)
	if r.ID != "" {
		buf = append(buf, `"id":`...)
		buf = appendString(buf, r.ID)
		buf = append(buf, ',')
	}
	if r.BinaryOutput {
		buf = append(buf, `"parameters":{"binary_data_output":true},`...)
	}
	buf = append(buf, `"inputs":[`...)
	for i, in := range r.Inputs {
		if i > 0 {
			buf = append(buf, ',')
		}
		if buf, err = appendTensorHeader(buf, in.Name, in.Tensor, in.Binary, in.Parameters); err != nil {
			return nil, 0, fmt.Errorf("input %q: %w", in.Name, err)
		}
		if !in.Binary {
			buf = append(buf, `,"data":`...)
			if buf, err = appendJSONData(buf, in.Tensor); err != nil {
				return nil, 0, fmt.Errorf("input %q: %w", in.Name, err)
			}
		}
		buf = append(buf, '}')
	}
	buf = append(buf, ']')
	if len(r.Outputs) > 0 {
		buf = append(buf, `,"outputs":[`...)
		for i, o := range r.Outputs {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, `{"name":`...)
			buf = appendString(buf, o.Name)
			buf = append(buf, `,"parameters":{"binary_data":`...)
			buf = strconv.AppendBool(buf, o.Binary)
			buf = append(buf, "}}"...)
		}
		buf = append(buf, ']')
	}
	buf = append(buf, '}')
	headerLen = len(buf)
	for _, in := range r.Inputs {
		if in.Binary {
			buf = appendBinary(buf, in.Tensor)
		}
	}
	return buf, headerLen, nil
}

type wireResponse struct {
	ModelName    string      `json:"model_name"`
	ModelVersion string      `json:"model_version"`
	ID           string      `json:"id"`
	Outputs      []wireInput `json:"outputs"` // an output has the fields of an input
	Error        string      `json:"error"`
}

// DecodeResponse parses an inference response as a client receives it;
// headerLen is its Inference-Header-Content-Length header, -1 when absent.
func DecodeResponse(body []byte, headerLen int64) (*Response, error) {
	jsonPart, bin := body, []byte(nil)
	if headerLen >= 0 {
		if headerLen == 0 || headerLen > int64(len(body)) {
			return nil, fmt.Errorf("%s is %d but the body has %d bytes", HeaderLength, headerLen, len(body))
		}
		jsonPart, bin = body[:headerLen], body[headerLen:]
	}
	var w wireResponse
	if err := json.Unmarshal(jsonPart, &w); err != nil {
		return nil, fmt.Errorf("not a v2 inference response: %s", jsonError(err, jsonPart))
	}
	if w.Error != "" { // the body of a failed request
		return nil, errors.New(oneline.Clip(w.Error, len(w.Error)))
	}
	r := &Response{ModelName: w.ModelName, ModelVersion: w.ModelVersion, ID: w.ID}
	for _, o := range w.Outputs {
		t, isBin, rest, err := decodeInput(o, bin, headerLen >= 0)
		if err != nil {
			return nil, fmt.Errorf("output %q: %w", o.Name, err)
		}
		bin = rest
		r.Outputs = append(r.Outputs, Output{Name: o.Name, Tensor: t, Binary: isBin, Parameters: o.Parameters})
	}
	if len(bin) > 0 {
		return nil, fmt.Errorf("%d bytes of binary data after the outputs", len(bin))
	}
	return r, nil
}

// appendTensorHeader writes `{"name":..,"datatype":..,"shape":[..]` and
// the parameters, with binary_data_size when the data is binary; the
// caller closes the object.
func appendTensorHeader(buf []byte, name string, t *onnxrt.Tensor, bin bool, params Parameters) ([]byte, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	dt, ok := Datatype(t.DType)
	if !ok {
		return nil, fmt.Errorf("element type %v has no v2 datatype", t.DType)
	}
	buf = append(buf, `{"name":`...)
	buf = appendString(buf, name)
	buf = append(buf, `,"datatype":"`...)
	buf = append(buf, dt...)
	buf = append(buf, `","shape":[`...)
	for i, d := range t.Shape {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = strconv.AppendInt(buf, int64(d), 10)
	}
	buf = append(buf, ']')
	var keys []string
	for k, v := range params {
		if k == ParamBinarySize || k == ParamBinary {
			continue // said by how the data is sent, not copied from the caller
		}
		if !json.Valid(v) {
			return nil, fmt.Errorf("parameter %q is not JSON: %s", k, clip(v))
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 && !bin {
		return buf, nil
	}
	slices.Sort(keys)
	buf = append(buf, `,"parameters":{`...)
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendString(buf, k)
		buf = append(buf, ':')
		buf = append(buf, params[k]...)
	}
	if bin {
		if len(keys) > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `"binary_data_size":`...)
		buf = strconv.AppendInt(buf, int64(binarySize(t)), 10)
	}
	buf = append(buf, '}')
	return buf, nil
}

// appendString writes s as a JSON string.
func appendString(buf []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return append(buf, b...)
}

// appendJSONData writes a tensor's elements as a flat JSON array.
func appendJSONData(buf []byte, t *onnxrt.Tensor) ([]byte, error) {
	buf = append(buf, '[')
	sep := func(i int) {
		if i > 0 {
			buf = append(buf, ',')
		}
	}
	switch d := t.Data.(type) {
	case []float32:
		for i, v := range d {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("element %d is %v, which JSON cannot carry; ask for binary_data", i, v)
			}
			sep(i)
			buf = strconv.AppendFloat(buf, float64(v), 'g', -1, 32)
		}
	case []float64:
		for i, v := range d {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("element %d is %v, which JSON cannot carry; ask for binary_data", i, v)
			}
			sep(i)
			buf = strconv.AppendFloat(buf, v, 'g', -1, 64)
		}
	case []uint16:
		for i, v := range d {
			sep(i)
			switch t.DType {
			case onnxrt.Float16, onnxrt.BFloat16:
				f := onnxrt.HalfToFloat32(v)
				if t.DType == onnxrt.BFloat16 {
					f = math.Float32frombits(uint32(v) << 16)
				}
				if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
					return nil, fmt.Errorf("element %d is %v, which JSON cannot carry; ask for binary_data", i, f)
				}
				buf = strconv.AppendFloat(buf, float64(f), 'g', -1, 32)
			default:
				buf = strconv.AppendUint(buf, uint64(v), 10)
			}
		}
	case []int8:
		for i, v := range d {
			sep(i)
			buf = strconv.AppendInt(buf, int64(v), 10)
		}
	case []int16:
		for i, v := range d {
			sep(i)
			buf = strconv.AppendInt(buf, int64(v), 10)
		}
	case []int32:
		for i, v := range d {
			sep(i)
			buf = strconv.AppendInt(buf, int64(v), 10)
		}
	case []int64:
		for i, v := range d {
			sep(i)
			buf = strconv.AppendInt(buf, v, 10)
		}
	case []uint8:
		for i, v := range d {
			sep(i)
			buf = strconv.AppendUint(buf, uint64(v), 10)
		}
	case []uint32:
		for i, v := range d {
			sep(i)
			buf = strconv.AppendUint(buf, uint64(v), 10)
		}
	case []uint64:
		for i, v := range d {
			sep(i)
			buf = strconv.AppendUint(buf, v, 10)
		}
	case []bool:
		for i, v := range d {
			sep(i)
			buf = strconv.AppendBool(buf, v)
		}
	case []string:
		for i, v := range d {
			sep(i)
			buf = appendString(buf, v)
		}
	default:
		return nil, fmt.Errorf("data of Go type %T", t.Data)
	}
	return append(buf, ']'), nil
}

// binarySize is the byte length of a tensor's binary data.
func binarySize(t *onnxrt.Tensor) int {
	if s, ok := t.Data.([]string); ok {
		n := 0
		for _, v := range s {
			n += 4 + len(v)
		}
		return n
	}
	return t.Len() * t.DType.Size()
}

// appendBinary writes a tensor's elements little-endian, row-major.
func appendBinary(buf []byte, t *onnxrt.Tensor) []byte {
	le := binary.LittleEndian
	switch d := t.Data.(type) {
	case []float32:
		for _, v := range d {
			buf = le.AppendUint32(buf, math.Float32bits(v))
		}
	case []float64:
		for _, v := range d {
			buf = le.AppendUint64(buf, math.Float64bits(v))
		}
	case []uint16:
		for _, v := range d {
			buf = le.AppendUint16(buf, v)
		}
	case []int8:
		for _, v := range d {
			buf = append(buf, byte(v))
		}
	case []uint8:
		buf = append(buf, d...)
	case []int16:
		for _, v := range d {
			buf = le.AppendUint16(buf, uint16(v))
		}
	case []int32:
		for _, v := range d {
			buf = le.AppendUint32(buf, uint32(v))
		}
	case []uint32:
		for _, v := range d {
			buf = le.AppendUint32(buf, v)
		}
	case []int64:
		for _, v := range d {
			buf = le.AppendUint64(buf, uint64(v))
		}
	case []uint64:
		for _, v := range d {
			buf = le.AppendUint64(buf, v)
		}
	case []bool:
		for _, v := range d {
			if v {
				buf = append(buf, 1)
			} else {
				buf = append(buf, 0)
			}
		}
	case []string:
		for _, v := range d {
			buf = le.AppendUint32(buf, uint32(len(v)))
			buf = append(buf, v...)
		}
	}
	return buf
}
