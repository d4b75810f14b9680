package kserve

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/onnxrt"
)

// The fixtures come from scripts/gen_kserve_golden.py (numpy lays out the
// bytes, Python's json writes the JSON); rerun it to regenerate them.
type golden struct {
	HeaderLength int64 `json:"binary_header_length"`
	Inputs       []struct {
		Name     string            `json:"name"`
		Datatype string            `json:"datatype"`
		Shape    []int             `json:"shape"`
		Values   []json.RawMessage `json:"values"`
	} `json:"inputs"`
}

func readGolden(t *testing.T) golden {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// wantTensor is a golden input as a tensor of its datatype.
func wantTensor(t *testing.T, datatype string, shape []int, vals []json.RawMessage) *onnxrt.Tensor {
	t.Helper()
	dt, err := DType(datatype)
	if err != nil {
		t.Fatal(err)
	}
	dec := func(i int, v any) {
		if err := json.Unmarshal(vals[i], v); err != nil {
			t.Fatalf("%s value %d: %v", datatype, i, err)
		}
	}
	var data any
	switch dt {
	case onnxrt.Float32:
		d := make([]float32, len(vals))
		for i := range d {
			var f float64
			dec(i, &f)
			d[i] = float32(f)
		}
		data = d
	case onnxrt.Int64:
		d := make([]int64, len(vals))
		for i := range d {
			dec(i, &d[i])
		}
		data = d
	case onnxrt.Bool:
		d := make([]bool, len(vals))
		for i := range d {
			dec(i, &d[i])
		}
		data = d
	case onnxrt.Uint8:
		d := make([]uint8, len(vals))
		for i := range d {
			dec(i, &d[i])
		}
		data = d
	case onnxrt.Float16:
		d := make([]uint16, len(vals))
		for i := range d {
			dec(i, &d[i])
		}
		data = d
	case onnxrt.Uint32:
		d := make([]uint32, len(vals))
		for i := range d {
			dec(i, &d[i])
		}
		data = d
	case onnxrt.String:
		d := make([]string, len(vals))
		for i := range d {
			dec(i, &d[i])
		}
		data = d
	default:
		t.Fatalf("no golden reader for %s", datatype)
	}
	return &onnxrt.Tensor{DType: dt, Shape: shape, Data: data}
}

func sameTensor(t *testing.T, what string, got, want *onnxrt.Tensor) {
	t.Helper()
	if got.DType != want.DType || !reflect.DeepEqual(got.Shape, want.Shape) || !reflect.DeepEqual(got.Data, want.Data) {
		t.Errorf("%s: got %v %v %v, want %v %v %v", what, got.DType, got.Shape, got.Data, want.DType, want.Shape, want.Data)
	}
}

// Requests written by numpy and Python's json decode to the same values,
// binary or JSON, nested or flat.
func TestDecodeGolden(t *testing.T) {
	g := readGolden(t)
	bin, err := os.ReadFile(filepath.Join("testdata", "binary_request.bin"))
	if err != nil {
		t.Fatal(err)
	}
	js, err := os.ReadFile(filepath.Join("testdata", "json_request.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		body      []byte
		headerLen int64
		id        string
		binary    bool
	}{
		{"binary", bin, g.HeaderLength, "golden-1", true},
		{"json", js, -1, "golden-2", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := DecodeRequest(tc.body, tc.headerLen)
			if err != nil {
				t.Fatal(err)
			}
			if req.ID != tc.id {
				t.Errorf("id %q", req.ID)
			}
			byName := map[string]Input{}
			for _, in := range req.Inputs {
				byName[in.Name] = in
				if in.Binary != tc.binary {
					t.Errorf("input %s: binary %v", in.Name, in.Binary)
				}
			}
			n := 0
			for _, w := range g.Inputs {
				in, ok := byName[w.Name]
				if !ok {
					if tc.binary || w.Datatype != "FP16" {
						t.Errorf("input %s missing", w.Name)
					}
					continue
				}
				n++
				sameTensor(t, w.Name, in.Tensor, wantTensor(t, w.Datatype, w.Shape, w.Values))
			}
			if n != len(req.Inputs) {
				t.Errorf("decoded %d inputs, matched %d", len(req.Inputs), n)
			}
			if tc.binary {
				want := []RequestedOutput{{Name: "embedding", Binary: true}, {Name: "logits", Binary: false}}
				for i := range req.Outputs {
					req.Outputs[i].Parameters = nil
				}
				if !reflect.DeepEqual(req.Outputs, want) || req.BinaryOutput {
					t.Errorf("outputs %+v (binary_data_output %v)", req.Outputs, req.BinaryOutput)
				}
			}
		})
	}
}

// The protocol's own example (binary tensor data extension document):
// UINT32 [2,2] and BOOL [3] as 16 + 3 bytes after the JSON.
func TestDecodeSpecExample(t *testing.T) {
	head := `{"model_name":"mymodel","inputs":[{"name":"input0","shape":[2,2],"datatype":"UINT32","parameters":{"binary_data_size":16}},` +
		`{"name":"input1","shape":[3],"datatype":"BOOL","parameters":{"binary_data_size":3}}],"outputs":[{"name":"output0","parameters":{"binary_data":true}}]}`
	body := []byte(head)
	for _, v := range []uint32{1, 2, 3, 4} {
		body = binary.LittleEndian.AppendUint32(body, v)
	}
	body = append(body, 1, 0, 1)
	req, err := DecodeRequest(body, int64(len(head)))
	if err != nil {
		t.Fatal(err)
	}
	sameTensor(t, "input0", req.Inputs[0].Tensor, onnxrt.NewTensor([]int{2, 2}, []uint32{1, 2, 3, 4}))
	sameTensor(t, "input1", req.Inputs[1].Tensor, onnxrt.NewTensor([]int{3}, []bool{true, false, true}))
	if len(req.Outputs) != 1 || !req.Outputs[0].Binary {
		t.Errorf("outputs %+v", req.Outputs)
	}
}

// decodeErrorCase is a request DecodeRequest refuses, and what it says.
type decodeErrorCase struct {
	name string
	head string
	bin  []byte
	hlen int64 // -2: len(head) when bin is set, else no header
	want string
}

// body is the case's request body and Inference-Header-Content-Length.
func (tc decodeErrorCase) body() ([]byte, int64) {
	hlen := tc.hlen
	if hlen == -2 {
		hlen = -1
		if tc.bin != nil {
			hlen = int64(len(tc.head))
		}
	}
	return append([]byte(tc.head), tc.bin...), hlen
}

func decodeErrorCases() []decodeErrorCase {
	in := func(fields string) string { return `{"inputs":[{"name":"x",` + fields + `}]}` }
	f32 := func(n int) []byte { return make([]byte, 4*n) }
	return []decodeErrorCase{
		{"malformed JSON", `{"inputs":[{"name":"x",}]}`, nil, -2, "malformed JSON at byte"},
		{"not an object", `[1,2]`, nil, -2, "not a v2 inference request"},
		{"wrong field type", `{"inputs":{"name":"x"}}`, nil, -2, `field "inputs"`},
		{"no inputs", `{"inputs":[]}`, nil, -2, "no inputs"},
		{"unnamed", `{"inputs":[{"shape":[1],"datatype":"FP32","data":[1]}]}`, nil, -2, "input 0 has no name"},
		{"twice", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]},{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}`, nil, -2, `"x" is given twice`},
		{"no shape", in(`"datatype":"FP32","data":[1]`), nil, -2, `no "shape"`},
		{"negative dim", in(`"shape":[-1,2],"datatype":"FP32","data":[1,2]`), nil, -2, "shape [-1 2] has a negative dimension"},
		{"unknown datatype", in(`"shape":[1],"datatype":"FLOAT","data":[1]`), nil, -2, `datatype "FLOAT" is not a v2 datatype`},
		{"lowercase datatype", in(`"shape":[1],"datatype":"fp32","data":[1]`), nil, -2, `datatype "fp32"`},
		{"too few elements", in(`"shape":[2,3],"datatype":"FP32","data":[1,2,3,4,5]`), nil, -2, "shape [2 3] needs 6 elements, \"data\" has 5"},
		{"too many nested", in(`"shape":[2],"datatype":"INT64","data":[[1,2],[3]]`), nil, -2, "needs 2 elements, \"data\" has 3"},
		{"huge shape", in(`"shape":[1000000,1000000,1000000],"datatype":"FP32","data":[1]`), nil, -2, "more than"},
		{"no data", in(`"shape":[1],"datatype":"FP32"`), nil, -2, `no "data"`},
		{"data not array", in(`"shape":[1],"datatype":"FP32","data":1`), nil, -2, "not an array"},
		{"string in FP32", in(`"shape":[2],"datatype":"FP32","data":[1,"2"]`), nil, -2, `element 1: "2" is not a number`},
		{"bool in FP32", in(`"shape":[1],"datatype":"FP32","data":[true]`), nil, -2, "element 0: true is not a number"},
		{"fraction in INT64", in(`"shape":[2],"datatype":"INT64","data":[1,1.5]`), nil, -2, "element 1: 1.5 is not an INT64"},
		{"over UINT8", in(`"shape":[1],"datatype":"UINT8","data":[256]`), nil, -2, "256 is not a UINT8"},
		{"negative UINT32", in(`"shape":[1],"datatype":"UINT32","data":[-1]`), nil, -2, "-1 is not a UINT32"},
		{"FP32 overflow", in(`"shape":[1],"datatype":"FP32","data":[1e39]`), nil, -2, "out of range for FP32"},
		{"double comma", in(`"shape":[2],"datatype":"FP32","data":[1,,2]`), nil, -2, `stray ','`},
		{"no comma", in(`"shape":[2],"datatype":"FP32","data":[1 2]`), nil, -2, "where a comma or ] belongs"},
		{"leading zero", in(`"shape":[1],"datatype":"FP32","data":[01]`), nil, -2, "01 is not a number"},
		{"hex float", in(`"shape":[1],"datatype":"FP32","data":[0x1p3]`), nil, -2, "0x1p3 is not a number"},
		{"brace closes data", in(`"shape":[1],"datatype":"FP32","data":[1}`), nil, -2, "is not a number"},
		{"unclosed data", in(`"shape":[1],"datatype":"FP32","data":[1`), nil, -2, "malformed JSON"},
		{"object element", in(`"shape":[1],"datatype":"FP32","data":[{"a":1}]`), nil, -2, "element 0 is an object"},
		{"number in BOOL", in(`"shape":[1],"datatype":"BOOL","data":[1]`), nil, -2, "1 is not true or false"},
		{"number in BYTES", in(`"shape":[1],"datatype":"BYTES","data":[1]`), nil, -2, "1 is not a string"},
		{"FP16 as JSON", in(`"shape":[1],"datatype":"FP16","data":[1.5]`), nil, -2, "send it as binary data"},
		{"binary without header", in(`"shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}`), nil, -2, "no Inference-Header-Content-Length header"},
		{"binary and data", in(`"shape":[1],"datatype":"FP32","data":[1],"parameters":{"binary_data_size":4}`), f32(1), -2, `both "data" and binary_data_size`},
		{"binary size wrong", in(`"shape":[2,2],"datatype":"FP32","parameters":{"binary_data_size":12}`), f32(3), -2, "binary_data_size is 12 bytes, but FP32 [2 2] needs 16"},
		{"binary size past the body", in(`"shape":[1],"datatype":"FP32","parameters":{"binary_data_size":8}`), f32(1), -2, "only 4 bytes of binary data are left"},
		{"binary size not an integer", in(`"shape":[1],"datatype":"FP32","parameters":{"binary_data_size":"4"}`), f32(1), -2, `"binary_data_size" is "4", not an integer`},
		{"bytes left over", in(`"shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}`), f32(2), -2, "4 bytes of binary data after"},
		{"header past the body", in(`"shape":[1],"datatype":"FP32","data":[1]`), nil, 10000, "Inference-Header-Content-Length is 10000"},
		{"header zero", in(`"shape":[1],"datatype":"FP32","data":[1]`), nil, 0, "Inference-Header-Content-Length is 0"},
		{"BOOL byte 2", in(`"shape":[2],"datatype":"BOOL","parameters":{"binary_data_size":2}`), []byte{1, 2}, -2, "BOOL element 1 is byte 2"},
		{"BYTES length past data", in(`"shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":6}`), []byte{9, 0, 0, 0, 'a', 'b'}, -2, "BYTES element 0 of 1 is 9 bytes, but only 2 are left"},
		{"BYTES too many", in(`"shape":[3],"datatype":"BYTES","parameters":{"binary_data_size":4}`), []byte{0, 0, 0, 0}, -2, "cannot hold 3 BYTES elements"},
		{"shared memory", in(`"shape":[1],"datatype":"FP32","parameters":{"shared_memory_region":"r"}`), nil, -2, "shared memory extension is not supported"},
		{"binary_data not bool", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"outputs":[{"name":"y","parameters":{"binary_data":1}}]}`, nil, -2, `"binary_data" is 1, not true or false`},
		{"classification", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"outputs":[{"name":"y","parameters":{"classification":3}}]}`, nil, -2, "classification extension"},
		{"unnamed output", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"outputs":[{}]}`, nil, -2, "requested output 0 has no name"},
		{"binary_data_output not bool", `{"parameters":{"binary_data_output":"yes"},"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}`, nil, -2, `"binary_data_output" is "yes"`},
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range decodeErrorCases() {
		t.Run(tc.name, func(t *testing.T) {
			body, hlen := tc.body()
			_, err := DecodeRequest(body, hlen)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error of more than one line: %q", err)
			}
		})
	}
}

// Integral floats are accepted for integer types, as clients with only
// doubles write them.
func TestDecodeIntegralFloats(t *testing.T) {
	req, err := DecodeRequest([]byte(`{"inputs":[{"name":"x","shape":[3],"datatype":"INT32","data":[3.0,-1e2,7]}]}`), -1)
	if err != nil {
		t.Fatal(err)
	}
	sameTensor(t, "x", req.Inputs[0].Tensor, onnxrt.NewTensor([]int{3}, []int32{3, -100, 7}))
}

// A response read back by hand as the protocol describes it: the JSON
// header, then each binary output's bytes in order.
func TestAppendResponse(t *testing.T) {
	emb := onnxrt.NewTensor([]int{2, 3}, []float32{0.1, -2.5e-8, 3, float32(math.Pi), 1e30, -0})
	ids := onnxrt.NewTensor([]int{2}, []int64{-7, 1 << 62})
	words := onnxrt.NewTensor([]int{2}, []string{"a\"b", "é"})
	half := onnxrt.NewTensor([]int{2}, []uint16{0x3e00, 0xc000}) // 1.5, -2
	half.DType = onnxrt.Float16
	r := &Response{ModelName: "m", ModelVersion: "1", ID: "r-1", Outputs: []Output{
		{Name: "embedding", Tensor: emb, Binary: true},
		{Name: "ids", Tensor: ids},
		{Name: "words", Tensor: words, Binary: true},
		{Name: "half", Tensor: half},
	}}
	prefix := []byte("keep")
	buf, jsonLen, err := AppendResponse(prefix, r)
	if err != nil {
		t.Fatal(err)
	}
	if string(buf[:4]) != "keep" {
		t.Fatal("AppendResponse overwrote the buffer's start")
	}
	body := buf[4:]
	var w struct {
		ModelName    string `json:"model_name"`
		ModelVersion string `json:"model_version"`
		ID           string `json:"id"`
		Outputs      []struct {
			Name       string           `json:"name"`
			Datatype   string           `json:"datatype"`
			Shape      []int            `json:"shape"`
			Parameters map[string]int64 `json:"parameters"`
			Data       []any            `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(body[:jsonLen], &w); err != nil {
		t.Fatalf("JSON header: %v: %s", err, body[:jsonLen])
	}
	if w.ModelName != "m" || w.ModelVersion != "1" || w.ID != "r-1" || len(w.Outputs) != 4 {
		t.Fatalf("header %+v", w)
	}
	rest := body[jsonLen:]
	// embedding: 6 float32, little-endian.
	if o := w.Outputs[0]; o.Datatype != "FP32" || fmt.Sprint(o.Shape) != "[2 3]" || o.Parameters["binary_data_size"] != 24 || o.Data != nil {
		t.Errorf("embedding header %+v", o)
	}
	for i, want := range emb.Data.([]float32) {
		if got := math.Float32frombits(binary.LittleEndian.Uint32(rest[4*i:])); got != want {
			t.Errorf("embedding[%d] = %v, want %v", i, got, want)
		}
	}
	rest = rest[24:]
	if o := w.Outputs[1]; o.Datatype != "INT64" || fmt.Sprint(o.Data) != fmt.Sprint([]any{-7.0, float64(1 << 62)}) || o.Parameters != nil {
		t.Errorf("ids %+v", o)
	}
	// words: BYTES, each with a 4-byte length.
	if o := w.Outputs[2]; o.Datatype != "BYTES" || o.Parameters["binary_data_size"] != 4+3+4+2 {
		t.Errorf("words header %+v", o)
	}
	if string(rest) != "\x03\x00\x00\x00a\"b\x02\x00\x00\x00é" {
		t.Errorf("words bytes %q", rest)
	}
	if o := w.Outputs[3]; o.Datatype != "FP16" || fmt.Sprint(o.Data) != "[1.5 -2]" {
		t.Errorf("half %+v", o)
	}
	// JSON floats are float32's shortest round-trip form.
	_, n, err := AppendResponse(nil, &Response{ModelName: "m", Outputs: []Output{{Name: "e", Tensor: emb}}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeResponse(mustAppend(t, &Response{ModelName: "m", Outputs: []Output{{Name: "e", Tensor: emb}}}), -1)
	if err != nil {
		t.Fatal(err)
	}
	sameTensor(t, "json floats", got.Outputs[0].Tensor, emb)
	if n == 0 {
		t.Error("empty header")
	}
	nan := onnxrt.NewTensor([]int{1}, []float32{float32(math.NaN())})
	if _, _, err := AppendResponse(nil, &Response{Outputs: []Output{{Name: "e", Tensor: nan}}}); err == nil || !strings.Contains(err.Error(), "ask for binary_data") {
		t.Errorf("NaN as JSON: %v", err)
	}
	if _, _, err := AppendResponse(nil, &Response{Outputs: []Output{{Name: "e", Tensor: nan, Binary: true}}}); err != nil {
		t.Errorf("NaN as binary: %v", err)
	}
}

func mustAppend(t *testing.T, r *Response) []byte {
	t.Helper()
	b, _, err := AppendResponse(nil, r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// What EncodeRequest writes, DecodeRequest reads back, for every datatype,
// as JSON and as binary data.
func TestRequestRoundTrip(t *testing.T) {
	tensors := roundTripTensors()
	for _, bin := range []bool{false, true} {
		body, hlen, err := EncodeRequest(roundTripRequest(tensors, bin))
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeRequest(body, int64(hlen))
		if err != nil {
			t.Fatalf("binary %v: %v", bin, err)
		}
		if got.ID != "rt" || got.BinaryOutput != bin || len(got.Outputs) != 1 || got.Outputs[0].Binary != bin {
			t.Errorf("binary %v: request fields %+v", bin, got)
		}
		for i, tt := range tensors {
			sameTensor(t, fmt.Sprintf("binary %v input %d", bin, i), got.Inputs[i].Tensor, tt)
		}
	}
}

// roundTripRequest has one input per tensor, binary when bin is set or the
// datatype has no JSON form.
func roundTripRequest(tensors []*onnxrt.Tensor, bin bool) *Request {
	req := &Request{ID: "rt", BinaryOutput: bin, Outputs: []RequestedOutput{{Name: "o", Binary: bin}}}
	for i, tt := range tensors {
		jsonable := tt.DType != onnxrt.Float16 && tt.DType != onnxrt.BFloat16
		req.Inputs = append(req.Inputs, Input{Name: fmt.Sprint("in", i), Tensor: tt, Binary: bin || !jsonable})
	}
	return req
}

// roundTripTensors holds every datatype, at its extremes.
func roundTripTensors() []*onnxrt.Tensor {
	half := onnxrt.NewTensor([]int{2}, []uint16{0x3c00, 0x7bff})
	half.DType = onnxrt.Float16
	bf := onnxrt.NewTensor([]int{1}, []uint16{0x3f80})
	bf.DType = onnxrt.BFloat16
	return []*onnxrt.Tensor{
		onnxrt.NewTensor([]int{2, 2}, []float32{1.25, -3, 1e-38, 7}),
		onnxrt.NewTensor([]int{2}, []float64{math.SmallestNonzeroFloat64, -1e300}),
		onnxrt.NewTensor([]int{3}, []int8{-128, 0, 127}),
		onnxrt.NewTensor([]int{2}, []int16{-32768, 32767}),
		onnxrt.NewTensor([]int{2}, []int32{math.MinInt32, math.MaxInt32}),
		onnxrt.NewTensor([]int{2}, []int64{math.MinInt64, math.MaxInt64}),
		onnxrt.NewTensor([]int{2}, []uint8{0, 255}),
		onnxrt.NewTensor([]int{1}, []uint16{65535}),
		onnxrt.NewTensor([]int{1}, []uint32{math.MaxUint32}),
		onnxrt.NewTensor([]int{1}, []uint64{math.MaxUint64}),
		onnxrt.NewTensor([]int{2, 1}, []bool{true, false}),
		onnxrt.NewTensor([]int{3}, []string{"", "x", "日本"}),
		onnxrt.NewTensor([]int{}, []float32{4}), // a scalar
		onnxrt.NewTensor([]int{0, 3}, []float32{}),
		half, bf,
	}
}

func TestDatatypes(t *testing.T) {
	for name, dt := range datatypes {
		if got, ok := Datatype(dt); !ok || got != name {
			t.Errorf("Datatype(%v) = %q, %v; want %q", dt, got, ok, name)
		}
		if got, err := DType(name); err != nil || got != dt {
			t.Errorf("DType(%q) = %v, %v", name, got, err)
		}
	}
	if _, ok := Datatype(onnxrt.DType(99)); ok {
		t.Error("an unknown element type has a datatype")
	}
}

// A failed request's {"error": ...} body is that error, on one line, not a
// response with no outputs.
func TestDecodeResponseErrorBody(t *testing.T) {
	_, err := DecodeResponse([]byte(`{"error":"model \"x\" is not\nserved here"}`), -1)
	if err == nil || err.Error() != `model "x" is not served here` {
		t.Errorf("got %v", err)
	}
}
