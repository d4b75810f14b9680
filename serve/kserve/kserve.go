// Package kserve reads and writes the KServe v2 (Open Inference Protocol)
// REST messages that sslzoo serve speaks: the inference request and
// response, with the binary tensor data extension (the JSON header's length
// in the Inference-Header-Content-Length header, "binary_data_size" on
// inputs and outputs, "binary_data" on requested outputs and
// "binary_data_output" on the request), and the server and model metadata
// objects. Tensors are onnxrt.Tensor values; datatypes map onto runtime
// element types (FP32 is Float32, BYTES is String, ...).
//
// The server side is DecodeRequest and AppendResponse; clients (tests, the
// load benchmark, Go programs) use EncodeRequest and DecodeResponse.
package kserve

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/sslzoo/sslzoo/onnxrt"
)

// HeaderLength is the HTTP header that gives the length of the JSON part
// of a body followed by binary tensor data.
const HeaderLength = "Inference-Header-Content-Length"

// ExtensionBinary is the name of the binary tensor data extension in the
// server metadata's extensions.
const ExtensionBinary = "binary_tensor_data"

// The parameters of the binary tensor data extension.
const (
	ParamBinarySize   = "binary_data_size"   // on a request input or response output: bytes of binary data
	ParamBinary       = "binary_data"        // on a requested output: return it as binary data
	ParamBinaryOutput = "binary_data_output" // on the request: every output binary unless it says otherwise
)

var datatypes = map[string]onnxrt.DType{
	"BOOL": onnxrt.Bool, "UINT8": onnxrt.Uint8, "UINT16": onnxrt.Uint16, "UINT32": onnxrt.Uint32,
	"UINT64": onnxrt.Uint64, "INT8": onnxrt.Int8, "INT16": onnxrt.Int16, "INT32": onnxrt.Int32,
	"INT64": onnxrt.Int64, "FP16": onnxrt.Float16, "FP32": onnxrt.Float32, "FP64": onnxrt.Float64,
	"BF16": onnxrt.BFloat16, "BYTES": onnxrt.String,
}

var datatypeNames = func() map[onnxrt.DType]string {
	m := make(map[onnxrt.DType]string, len(datatypes))
	for k, v := range datatypes {
		m[v] = k
	}
	return m
}()

// Datatype is the v2 name of an element type ("FP32" for Float32); ok is
// false for a type the protocol has no name for.
func Datatype(d onnxrt.DType) (name string, ok bool) {
	name, ok = datatypeNames[d]
	return name, ok
}

// DType is the element type of a v2 datatype name (case-sensitive, as the
// protocol says).
func DType(datatype string) (onnxrt.DType, error) {
	d, ok := datatypes[datatype]
	if !ok {
		return 0, fmt.Errorf("datatype %q is not a v2 datatype (BOOL, UINT8..UINT64, INT8..INT64, FP16, FP32, FP64, BF16, BYTES)", datatype)
	}
	return d, nil
}

// Parameters are a v2 object's "parameters": names to JSON strings,
// numbers or booleans, kept raw until read with Int64 or Bool.
type Parameters map[string]json.RawMessage

// Int64 reads an integer parameter; ok is false when it is absent.
func (p Parameters) Int64(key string) (v int64, ok bool, err error) {
	raw, ok := p[key]
	if !ok {
		return 0, false, nil
	}
	v, err = strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, true, fmt.Errorf("parameter %q is %s, not an integer", key, clip(raw))
	}
	return v, true, nil
}

// Bool reads a boolean parameter; ok is false when it is absent.
func (p Parameters) Bool(key string) (v, ok bool, err error) {
	raw, ok := p[key]
	if !ok {
		return false, false, nil
	}
	switch string(raw) {
	case "true":
		return true, true, nil
	case "false":
		return false, true, nil
	}
	return false, true, fmt.Errorf("parameter %q is %s, not true or false", key, clip(raw))
}

// Request is a decoded inference request.
type Request struct {
	ID         string
	Parameters Parameters
	Inputs     []Input
	// Outputs are the outputs asked for; nil asks for all of them, each
	// binary when BinaryOutput is set.
	Outputs      []RequestedOutput
	BinaryOutput bool
}

// Input is one input tensor of a request.
type Input struct {
	Name       string
	Tensor     *onnxrt.Tensor
	Parameters Parameters
	// Binary is set when the data came as binary tensor data (and, for
	// EncodeRequest, asks for it to be sent so).
	Binary bool
}

// RequestedOutput names an output to return, and whether as binary data.
type RequestedOutput struct {
	Name       string
	Binary     bool
	Parameters Parameters
}

// Output is one output tensor of a response.
type Output struct {
	Name       string
	Tensor     *onnxrt.Tensor
	Binary     bool // sent as binary data after the JSON header
	Parameters Parameters
}

// Response is an inference response.
type Response struct {
	ModelName    string
	ModelVersion string
	ID           string
	Outputs      []Output
}

// TensorMetadata describes a model input or output; -1 is a dimension of
// any size.
type TensorMetadata struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// ModelMetadata is the reply to GET /v2/models/NAME.
type ModelMetadata struct {
	Name       string           `json:"name"`
	Versions   []string         `json:"versions,omitempty"`
	Platform   string           `json:"platform"`
	Inputs     []TensorMetadata `json:"inputs"`
	Outputs    []TensorMetadata `json:"outputs"`
	Parameters map[string]any   `json:"parameters,omitempty"`
}

// ServerMetadata is the reply to GET /v2.
type ServerMetadata struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Extensions []string `json:"extensions"`
}

// Error is the body of every failed v2 request.
type Error struct {
	Error string `json:"error"`
}
