package kserve

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unsafe"

	"github.com/sslzoo/sslzoo/internal/oneline"
	"github.com/sslzoo/sslzoo/onnxrt"
)

// maxElements bounds the element count a shape may declare; real data must
// match it anyway, this only keeps the products from overflowing.
const maxElements = 1 << 40

type wireRequest struct {
	ID         string       `json:"id"`
	Parameters Parameters   `json:"parameters"`
	Inputs     []wireInput  `json:"inputs"`
	Outputs    []wireOutput `json:"outputs"`
}

type wireInput struct {
	Name       string          `json:"name"`
	Shape      []int64         `json:"shape"`
	Datatype   string          `json:"datatype"`
	Parameters Parameters      `json:"parameters"`
	Data       json.RawMessage `json:"data"`
}

type wireOutput struct {
	Name       string     `json:"name"`
	Parameters Parameters `json:"parameters"`
}

// DecodeRequest parses an inference request body. headerLen is the value
// of the Inference-Header-Content-Length header, or -1 when the request
// has none: the body is then JSON alone. Every error names the input and
// what is wrong with it; nothing is allocated from a declared shape before
// the data it needs has been seen.
func DecodeRequest(body []byte, headerLen int64) (*Request, error) {
	return decodeRequest(body, headerLen, true)
}

// decodeRequest is DecodeRequest, with lift false giving the whole JSON
// part to encoding/json (the fuzz target checks that both ways agree).
func decodeRequest(body []byte, headerLen int64, lift bool) (*Request, error) {
	jsonPart, bin := body, []byte(nil)
	if headerLen >= 0 {
		if headerLen == 0 || headerLen > int64(len(body)) {
			return nil, fmt.Errorf("%s is %d but the body has %d bytes", HeaderLength, headerLen, len(body))
		}
		jsonPart, bin = body[:headerLen], body[headerLen:]
	}
	w, err := unmarshalRequest(jsonPart, lift)
	if err != nil {
		return nil, err
	}
	if len(w.Inputs) == 0 {
		return nil, errors.New(`the request has no inputs ("inputs": [{"name", "shape", "datatype", "data"}])`)
	}
	req := &Request{ID: w.ID, Parameters: w.Parameters}
	if req.BinaryOutput, _, err = w.Parameters.Bool(ParamBinaryOutput); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i, in := range w.Inputs {
		if in.Name == "" {
			return nil, fmt.Errorf("input %d has no name", i)
		}
		if seen[in.Name] {
			return nil, fmt.Errorf("input %q is given twice", in.Name)
		}
		seen[in.Name] = true
		t, isBin, rest, err := decodeInput(in, bin, headerLen >= 0)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", in.Name, err)
		}
		bin = rest
		req.Inputs = append(req.Inputs, Input{Name: in.Name, Tensor: t, Parameters: in.Parameters, Binary: isBin})
	}
	if len(bin) > 0 {
		return nil, fmt.Errorf("%d bytes of binary data after the inputs' binary_data_size are used up", len(bin))
	}
	for i, o := range w.Outputs {
		if o.Name == "" {
			return nil, fmt.Errorf("requested output %d has no name", i)
		}
		b, ok, err := o.Parameters.Bool(ParamBinary)
		if err != nil {
			return nil, fmt.Errorf("requested output %q: %w", o.Name, err)
		}
		if !ok {
			b = req.BinaryOutput
		}
		if _, ok := o.Parameters["classification"]; ok {
			return nil, fmt.Errorf("requested output %q: the classification extension is not supported", o.Name)
		}
		req.Outputs = append(req.Outputs, RequestedOutput{Name: o.Name, Binary: b, Parameters: o.Parameters})
	}
	return req, nil
}

// unmarshalRequest parses the JSON part, with the data arrays lifted out
// first where liftData can (collect validates them instead).
func unmarshalRequest(jsonPart []byte, lift bool) (*wireRequest, error) {
	if lift {
		if w, ok := unmarshalLifted(jsonPart); ok {
			return w, nil
		}
	}
	var w wireRequest
	if err := json.Unmarshal(jsonPart, &w); err != nil {
		return nil, fmt.Errorf("the request is not a v2 inference request: %s", jsonError(err, jsonPart))
	}
	return &w, nil
}

// unmarshalLifted is unmarshalRequest with the data arrays lifted out, or
// false when liftData declined or the skeleton did not parse (the whole
// body then gives the error, at its right offset).
func unmarshalLifted(jsonPart []byte) (*wireRequest, bool) {
	skel, lifted, ok := liftData(jsonPart)
	if !ok {
		return nil, false
	}
	var w wireRequest
	if err := json.Unmarshal(skel, &w); err != nil {
		return nil, false
	}
	for i, raw := range lifted {
		if i >= len(w.Inputs) {
			return nil, false
		}
		w.Inputs[i].Data = raw
	}
	return &w, true
}

// jsonError makes encoding/json's message say where in the body it is.
func jsonError(err error, b []byte) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("malformed JSON at byte %d of %d: %v", se.Offset, len(b), err)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q is a JSON %s, want %v", te.Field, te.Value, te.Type)
	}
	return err.Error()
}

// numel is the element count of a shape, refusing negative dims and
// absurd products.
func numel(shape []int64) (int, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v has a negative dimension", shape)
		}
		if d > 0 && n > maxElements/d {
			return 0, fmt.Errorf("shape %v has more than %d elements", shape, int64(maxElements))
		}
		n *= d
	}
	return int(n), nil
}

func intShape(shape []int64) []int {
	s := make([]int, len(shape))
	for i, d := range shape {
		s[i] = int(d)
	}
	return s
}

// decodeInput builds one input's tensor from its JSON data or from the
// front of bin, returning the rest of bin.
func decodeInput(in wireInput, bin []byte, haveBin bool) (*onnxrt.Tensor, bool, []byte, error) {
	if in.Shape == nil {
		return nil, false, nil, errors.New(`no "shape"`)
	}
	dt, err := DType(in.Datatype)
	if err != nil {
		return nil, false, nil, err
	}
	n, err := numel(in.Shape)
	if err != nil {
		return nil, false, nil, err
	}
	if _, ok := in.Parameters["shared_memory_region"]; ok {
		return nil, false, nil, errors.New("the shared memory extension is not supported; send the data in the body")
	}
	size, isBin, err := in.Parameters.Int64(ParamBinarySize)
	if err != nil {
		return nil, false, nil, err
	}
	hasData := len(in.Data) > 0 && string(in.Data) != "null"
	switch {
	case isBin && hasData:
		return nil, false, nil, errors.New(`has both "data" and binary_data_size; give one`)
	case isBin && !haveBin:
		return nil, false, nil, fmt.Errorf("has binary_data_size but the request has no %s header", HeaderLength)
	case isBin:
		if size < 0 || size > int64(len(bin)) {
			return nil, false, nil, fmt.Errorf("binary_data_size %d but only %d bytes of binary data are left", size, len(bin))
		}
		t, err := binaryTensor(dt, in.Shape, n, bin[:size])
		return t, true, bin[size:], err
	case !hasData:
		return nil, false, nil, errors.New(`no "data" (or binary_data_size)`)
	}
	t, err := jsonTensor(dt, in.Shape, n, in.Data)
	return t, false, bin, err
}

// binaryTensor reads little-endian, row-major binary tensor data.
func binaryTensor(dt onnxrt.DType, shape []int64, n int, b []byte) (*onnxrt.Tensor, error) {
	sh := intShape(shape)
	if dt == onnxrt.String {
		return bytesTensor(sh, n, b)
	}
	if want := int64(n) * int64(dt.Size()); int64(len(b)) != want {
		return nil, fmt.Errorf("binary_data_size is %d bytes, but %v %v needs %d (%d elements of %d bytes)",
			len(b), datatypeNames[dt], shape, want, n, dt.Size())
	}
	le := binary.LittleEndian
	switch dt {
	case onnxrt.Float32:
		v := make([]float32, n)
		for i := range v {
			v[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
		return onnxrt.NewTensor(sh, v), nil
	case onnxrt.Float64:
		v := make([]float64, n)
		for i := range v {
			v[i] = math.Float64frombits(le.Uint64(b[8*i:]))
		}
		return onnxrt.NewTensor(sh, v), nil
	case onnxrt.Float16, onnxrt.BFloat16, onnxrt.Uint16:
		v := make([]uint16, n)
		for i := range v {
			v[i] = le.Uint16(b[2*i:])
		}
		t := onnxrt.NewTensor(sh, v)
		t.DType = dt
		return t, nil
	case onnxrt.Int8:
		v := make([]int8, n)
		for i := range v {
			v[i] = int8(b[i])
		}
		return onnxrt.NewTensor(sh, v), nil
	case onnxrt.Uint8:
		return onnxrt.NewTensor(sh, bytes.Clone(b)), nil
	case onnxrt.Int16:
		v := make([]int16, n)
		for i := range v {
			v[i] = int16(le.Uint16(b[2*i:]))
		}
		return onnxrt.NewTensor(sh, v), nil
	case onnxrt.Int32:
		v := make([]int32, n)
		for i := range v {
			v[i] = int32(le.Uint32(b[4*i:]))
		}
		return onnxrt.NewTensor(sh, v), nil
	case onnxrt.Uint32:
		v := make([]uint32, n)
		for i := range v {
			v[i] = le.Uint32(b[4*i:])
		}
		return onnxrt.NewTensor(sh, v), nil
	case onnxrt.Int64:
		v := make([]int64, n)
		for i := range v {
			v[i] = int64(le.Uint64(b[8*i:]))
		}
		return onnxrt.NewTensor(sh, v), nil
	case onnxrt.Uint64:
		v := make([]uint64, n)
		for i := range v {
			v[i] = le.Uint64(b[8*i:])
		}
		return onnxrt.NewTensor(sh, v), nil
	case onnxrt.Bool:
		v := make([]bool, n)
		for i, c := range b {
			if c > 1 {
				return nil, fmt.Errorf("BOOL element %d is byte %d; binary BOOL is one byte, 0 or 1", i, c)
			}
			v[i] = c == 1
		}
		return onnxrt.NewTensor(sh, v), nil
	}
	return nil, fmt.Errorf("datatype %s cannot be read as binary data", datatypeNames[dt])
}

// bytesTensor reads BYTES elements: each a 4-byte little-endian length and
// then that many bytes.
func bytesTensor(shape []int, n int, b []byte) (*onnxrt.Tensor, error) {
	if n > len(b)/4 {
		return nil, fmt.Errorf("binary_data_size %d cannot hold %d BYTES elements of at least 4 bytes", len(b), n)
	}
	v := make([]string, n)
	for i := range v {
		if len(b) < 4 {
			return nil, fmt.Errorf("BYTES element %d of %d: its length prefix is past the binary data", i, n)
		}
		l := binary.LittleEndian.Uint32(b)
		if uint64(l) > uint64(len(b)-4) {
			return nil, fmt.Errorf("BYTES element %d of %d is %d bytes, but only %d are left", i, n, l, len(b)-4)
		}
		v[i] = string(b[4 : 4+l])
		b = b[4+l:]
	}
	if len(b) > 0 {
		return nil, fmt.Errorf("%d bytes left over after %d BYTES elements", len(b), n)
	}
	return onnxrt.NewTensor(shape, v), nil
}

// jsonTensor reads "data": a JSON array, flat or nested, of n elements in
// row-major order.
func jsonTensor(dt onnxrt.DType, shape []int64, n int, raw json.RawMessage) (*onnxrt.Tensor, error) {
	sh := intShape(shape)
	// Each element takes at least two bytes ("1,"), so this bounds the
	// allocation by the body, whatever the shape claims.
	capHint := min(n, len(raw)/2+1)
	var t *onnxrt.Tensor
	var err error
	switch dt {
	case onnxrt.Float32:
		t, err = collect(raw, capHint, sh, func(tok []byte) (float32, error) {
			if isNumber(tok) {
				if f, ok := fastFloat32(tok); ok {
					return f, nil
				}
			}
			f, err := parseFloat(tok, 32)
			return float32(f), err
		})
	case onnxrt.Float64:
		t, err = collect(raw, capHint, sh, func(tok []byte) (float64, error) { return parseFloat(tok, 64) })
	case onnxrt.Int8:
		t, err = collect(raw, capHint, sh, func(tok []byte) (int8, error) { v, err := parseInt(tok, 8); return int8(v), err })
	case onnxrt.Int16:
		t, err = collect(raw, capHint, sh, func(tok []byte) (int16, error) { v, err := parseInt(tok, 16); return int16(v), err })
	case onnxrt.Int32:
		t, err = collect(raw, capHint, sh, func(tok []byte) (int32, error) { v, err := parseInt(tok, 32); return int32(v), err })
	case onnxrt.Int64:
		t, err = collect(raw, capHint, sh, func(tok []byte) (int64, error) { return parseInt(tok, 64) })
	case onnxrt.Uint8:
		t, err = collect(raw, capHint, sh, func(tok []byte) (uint8, error) { v, err := parseUint(tok, 8); return uint8(v), err })
	case onnxrt.Uint16:
		t, err = collect(raw, capHint, sh, func(tok []byte) (uint16, error) { v, err := parseUint(tok, 16); return uint16(v), err })
	case onnxrt.Uint32:
		t, err = collect(raw, capHint, sh, func(tok []byte) (uint32, error) { v, err := parseUint(tok, 32); return uint32(v), err })
	case onnxrt.Uint64:
		t, err = collect(raw, capHint, sh, func(tok []byte) (uint64, error) { return parseUint(tok, 64) })
	case onnxrt.Bool:
		t, err = collect(raw, capHint, sh, func(tok []byte) (bool, error) {
			switch string(tok) {
			case "true":
				return true, nil
			case "false":
				return false, nil
			}
			return false, fmt.Errorf("%s is not true or false", clip(tok))
		})
	case onnxrt.String:
		t, err = collect(raw, capHint, sh, func(tok []byte) (string, error) {
			if len(tok) == 0 || tok[0] != '"' {
				return "", fmt.Errorf("%s is not a string", clip(tok))
			}
			var s string
			err := json.Unmarshal(tok, &s)
			return s, err
		})
	default:
		return nil, fmt.Errorf("%s data cannot be given as JSON numbers; send it as binary data (binary_data_size)", datatypeNames[dt])
	}
	if err != nil {
		return nil, err
	}
	if got := t.Len(); got != n {
		return nil, fmt.Errorf("shape %v needs %d elements, \"data\" has %d", shape, n, got)
	}
	return t, nil
}

// maxDataDepth bounds how deeply "data" arrays may nest (encoding/json
// allows 10000; a tensor's data nests to its rank).
const maxDataDepth = 64

// collect parses every scalar of a JSON array (nested arrays flatten in
// row-major order) with parse. It checks the array's JSON syntax itself:
// raw may be an array that liftData took out before encoding/json looked.
func collect[T onnxrt.Elem](raw []byte, capHint int, shape []int, parse func([]byte) (T, error)) (*onnxrt.Tensor, error) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return nil, fmt.Errorf(`"data" is %s, not an array`, clip(raw))
	}
	c := collector[T]{raw: raw, parse: parse, out: make([]T, 0, capHint)}
	end, err := c.array(i, 1)
	if err != nil {
		return nil, err
	}
	if end = skipSpace(raw, end); end != len(raw) {
		return nil, fmt.Errorf(`"data" has %s after its array`, clip(raw[end:]))
	}
	return onnxrt.NewTensor(shape, c.out), nil
}

type collector[T onnxrt.Elem] struct {
	raw   []byte
	parse func([]byte) (T, error)
	out   []T
}

// array parses the array at raw[i] == '[' and returns the offset past it.
func (c *collector[T]) array(i, depth int) (int, error) {
	if depth > maxDataDepth {
		return 0, fmt.Errorf(`"data" nests arrays deeper than %d`, maxDataDepth)
	}
	raw := c.raw
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == ']' {
		return i + 1, nil
	}
	for {
		if i >= len(raw) {
			return 0, errors.New(`"data" ends inside an array`)
		}
		switch raw[i] {
		case '[':
			var err error
			if i, err = c.array(i, depth+1); err != nil {
				return 0, err
			}
		case '{':
			return 0, fmt.Errorf("element %d is an object", len(c.out))
		case ',', ']':
			return 0, fmt.Errorf(`"data" has a stray %q at byte %d`, raw[i], i)
		default:
			j := scalarEnd(raw, i)
			v, err := c.parse(raw[i:j])
			if err != nil {
				return 0, fmt.Errorf("element %d: %w", len(c.out), err)
			}
			c.out = append(c.out, v)
			i = j
		}
		i = skipSpace(raw, i)
		if i >= len(raw) {
			return 0, errors.New(`"data" ends inside an array`)
		}
		switch raw[i] {
		case ',':
			i = skipSpace(raw, i+1)
		case ']':
			return i + 1, nil
		default:
			return 0, fmt.Errorf(`"data" has %s where a comma or ] belongs`, clip(raw[i:]))
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// scalarEnd is the end of the string, number or literal starting at i.
func scalarEnd(b []byte, i int) int {
	if b[i] == '"' {
		for j := i + 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				return j + 1
			}
		}
		return len(b)
	}
	j := i
	for j < len(b) && !endsScalar[b[j]] {
		j++
	}
	return j
}

// endsScalar marks the bytes that end a number or literal in an array.
var endsScalar = [256]bool{',': true, ']': true, ' ': true, '\t': true, '\r': true, '\n': true}

// clip shortens a token or raw JSON value for an error message, on one
// line: the line breaks and tabs JSON allows between tokens become spaces.
func clip(b []byte) string { return oneline.Clip(string(b), 24) }

// str views tok as a string without copying, for strconv's parsers, which
// keep it only in the errors they return (dropped here): a request's
// thousands of numbers would otherwise cost an allocation each.
func str(tok []byte) string { return unsafe.String(unsafe.SliceData(tok), len(tok)) }

// isNumber is JSON's number grammar, -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?,
// which strconv's parsers are looser than ("0x1p3", "1_0", "Inf", "01", ".5").
func isNumber(tok []byte) bool {
	i, n := 0, len(tok)
	digits := func() bool {
		start := i
		for i < n && tok[i] >= '0' && tok[i] <= '9' {
			i++
		}
		return i > start
	}
	if i < n && tok[i] == '-' {
		i++
	}
	switch {
	case i < n && tok[i] == '0':
		i++
	case !digits():
		return false
	}
	if i < n && tok[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < n && (tok[i] == 'e' || tok[i] == 'E') {
		i++
		if i < n && (tok[i] == '+' || tok[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	return i == n
}

func parseFloat(tok []byte, bits int) (float64, error) {
	if !isNumber(tok) {
		return 0, fmt.Errorf("%s is not a number", clip(tok))
	}
	f, err := strconv.ParseFloat(str(tok), bits)
	if err != nil {
		return 0, fmt.Errorf("%s is out of range for FP%d", clip(tok), bits)
	}
	return f, nil
}

// parseInt reads an integer; an integral float ("3.0", "1e2") is accepted
// as clients that only have doubles write them.
func parseInt(tok []byte, bits int) (int64, error) {
	if !isNumber(tok) {
		return 0, fmt.Errorf("%s is not a number", clip(tok))
	}
	v, err := strconv.ParseInt(str(tok), 10, bits)
	if err == nil {
		return v, nil
	}
	f, ferr := strconv.ParseFloat(str(tok), 64)
	lo, hi := -math.Ldexp(1, bits-1), math.Ldexp(1, bits-1)
	if ferr != nil || f != math.Trunc(f) || f < lo || f >= hi {
		return 0, fmt.Errorf("%s is not an INT%d", clip(tok), bits)
	}
	return int64(f), nil
}

func parseUint(tok []byte, bits int) (uint64, error) {
	if !isNumber(tok) {
		return 0, fmt.Errorf("%s is not a number", clip(tok))
	}
	v, err := strconv.ParseUint(str(tok), 10, bits)
	if err == nil {
		return v, nil
	}
	f, ferr := strconv.ParseFloat(str(tok), 64)
	if ferr != nil || f != math.Trunc(f) || f < 0 || f >= math.Ldexp(1, bits) {
		return 0, fmt.Errorf("%s is not a UINT%d", clip(tok), bits)
	}
	return uint64(f), nil
}
