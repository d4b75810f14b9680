package kserve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/internal/fuzzcheck"
	"github.com/sslzoo/sslzoo/onnxrt"
)

// FuzzDecodeRequest: any body and Inference-Header-Content-Length give a
// one-line error or a request whose every input holds exactly the elements
// its shape calls for, of its datatype, with the binary data used up by
// the binary_data_size of the inputs sent so; EncodeRequest of it decodes
// back to the same request. The allocation is bounded by the body, however
// many elements a shape declares. The seeds are the golden requests,
// TestDecodeSpecExample's, TestDecodeErrors' bad ones, TestRequestRoundTrip's
// (as JSON and as binary) and shapes of 1e12 elements with no data.
func FuzzDecodeRequest(f *testing.F) {
	g := readGoldenF(f)
	fuzzcheck.Seed(f, "golden_binary", fuzzcheck.File(f, "testdata/binary_request.bin"), g.HeaderLength)
	fuzzcheck.Seed(f, "golden_json", fuzzcheck.File(f, "testdata/json_request.json"), int64(-1))
	head := `{"model_name":"mymodel","inputs":[{"name":"input0","shape":[2,2],"datatype":"UINT32","parameters":{"binary_data_size":16}},` +
		`{"name":"input1","shape":[3],"datatype":"BOOL","parameters":{"binary_data_size":3}}],"outputs":[{"name":"output0","parameters":{"binary_data":true}}]}`
	spec := append([]byte(head), 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 1, 0, 1)
	fuzzcheck.Seed(f, "spec_example", spec, int64(len(head)))
	for _, tc := range decodeErrorCases() {
		body, hlen := tc.body()
		fuzzcheck.Seed(f, "bad_"+strings.ReplaceAll(tc.name, " ", "_"), body, hlen)
	}
	for _, bin := range []bool{false, true} {
		body, hlen, err := EncodeRequest(roundTripRequest(roundTripTensors(), bin))
		if err != nil {
			f.Fatal(err)
		}
		fuzzcheck.Seed(f, fmt.Sprintf("round_trip_binary_%v", bin), body, int64(hlen))
	}
	fuzzcheck.Seed(f, "huge_shape_no_data", []byte(`{"inputs":[{"name":"x","shape":[1000000000000],"datatype":"FP32","data":[]}]}`), int64(-1))
	hugeBin := `{"inputs":[{"name":"x","shape":[1000000000000],"datatype":"BYTES","parameters":{"binary_data_size":4}}]}`
	fuzzcheck.Seed(f, "huge_shape_binary", append([]byte(hugeBin), 0, 0, 0, 0), int64(len(hugeBin)))
	// Raw JSON that error messages quote, spread over lines.
	fuzzcheck.Seed(f, "data_object_lines", []byte("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":{\n\"a\":1}}]}"), int64(-1))
	fuzzcheck.Seed(f, "binary_size_lines", []byte("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":[\n4]}}]}"), int64(-1))
	fuzzcheck.Seed(f, "zero_dim", []byte(`{"inputs":[{"name":"x","shape":[0,1000000000000],"datatype":"INT64","data":[]}]}`), int64(-1))
	f.Fuzz(func(t *testing.T, body []byte, headerLen int64) {
		fuzzcheck.Bounded(t, fuzzcheck.Limit(len(body), 16), func() {
			req, err := DecodeRequest(body, headerLen)
			whole, wholeErr := decodeRequest(body, headerLen, false)
			if (err == nil) != (wholeErr == nil) {
				t.Fatalf("lifting the data arrays changed the outcome: %v; without: %v", err, wholeErr)
			}
			if err != nil {
				checkOneLine(t, err)
				return
			}
			checkSameRequest(t, "lifted vs whole", req, whole)
			checkInputs(t, req.Inputs, body, headerLen)
			enc, hl, err := EncodeRequest(req)
			if err != nil {
				t.Fatalf("EncodeRequest of a decoded request: %v", err)
			}
			back, err := DecodeRequest(enc, int64(hl))
			if err != nil {
				t.Fatalf("DecodeRequest of EncodeRequest: %v\n%q", err, enc)
			}
			checkSameRequest(t, "round trip", req, back)
		})
	})
}

// checkSameRequest fails t unless b decoded to the same request as a.
func checkSameRequest(t *testing.T, what string, a, b *Request) {
	t.Helper()
	if b.ID != a.ID || b.BinaryOutput != a.BinaryOutput || len(b.Inputs) != len(a.Inputs) || len(b.Outputs) != len(a.Outputs) {
		t.Fatalf("%s changed the request: %+v, then %+v", what, a, b)
	}
	for i, in := range a.Inputs {
		bi := b.Inputs[i]
		if bi.Name != in.Name || bi.Binary != in.Binary || !sameData(bi.Tensor, in.Tensor) || !sameParams(bi.Parameters, in.Parameters) {
			t.Fatalf("%s changed input %q: %+v, then %+v", what, in.Name, in, bi)
		}
	}
	for i, o := range a.Outputs {
		if bo := b.Outputs[i]; bo.Name != o.Name || bo.Binary != o.Binary {
			t.Fatalf("%s changed requested output %q: %+v, then %+v", what, o.Name, o, bo)
		}
	}
}

// FuzzDecodeResponse: as FuzzDecodeRequest, for a response as clients
// read it, through AppendResponse. The seeds are TestAppendResponse's
// response, one of every datatype, an error body and the bad requests'
// inputs as outputs.
func FuzzDecodeResponse(f *testing.F) {
	emb := onnxrt.NewTensor([]int{2, 3}, []float32{0.1, -2.5e-8, 3, float32(math.Pi), 1e30, -0})
	ids := onnxrt.NewTensor([]int{2}, []int64{-7, 1 << 62})
	words := onnxrt.NewTensor([]int{2}, []string{"a\"b", "é"})
	half := onnxrt.NewTensor([]int{2}, []uint16{0x3e00, 0xc000})
	half.DType = onnxrt.Float16
	r := &Response{ModelName: "m", ModelVersion: "1", ID: "r-1", Outputs: []Output{
		{Name: "embedding", Tensor: emb, Binary: true},
		{Name: "ids", Tensor: ids},
		{Name: "words", Tensor: words, Binary: true},
		{Name: "half", Tensor: half},
	}}
	seedResponse := func(name string, r *Response) {
		b, n, err := AppendResponse(nil, r)
		if err != nil {
			f.Fatal(err)
		}
		fuzzcheck.Seed(f, name, b, int64(n))
	}
	seedResponse("append_response", r)
	for _, bin := range []bool{false, true} {
		req := roundTripRequest(roundTripTensors(), bin)
		resp := &Response{ModelName: "all"}
		for _, in := range req.Inputs {
			resp.Outputs = append(resp.Outputs, Output{Name: in.Name, Tensor: in.Tensor, Binary: in.Binary})
		}
		seedResponse(fmt.Sprintf("datatypes_binary_%v", bin), resp)
	}
	fuzzcheck.Seed(f, "error", []byte(`{"error":"model \"x\" is not served here"}`), int64(-1))
	fuzzcheck.Seed(f, "error_lines", []byte(`{"error":"two\nlines"}`), int64(-1))
	for _, tc := range decodeErrorCases() {
		if !strings.Contains(tc.head, `"inputs":[{"name":"x",`) {
			continue
		}
		body, hlen := tc.body()
		body = bytes.Replace(body, []byte(`{"inputs":`), []byte(`{"model_name":"m","outputs":`), 1)
		if hlen > 0 {
			hlen += int64(len(`"model_name":"m","outputs"`) - len(`"inputs"`))
		}
		fuzzcheck.Seed(f, "bad_"+strings.ReplaceAll(tc.name, " ", "_"), body, hlen)
	}
	f.Fuzz(func(t *testing.T, body []byte, headerLen int64) {
		fuzzcheck.Bounded(t, fuzzcheck.Limit(len(body), 16), func() {
			resp, err := DecodeResponse(body, headerLen)
			if err != nil {
				checkOneLine(t, err)
				return
			}
			ins := make([]Input, len(resp.Outputs))
			for i, o := range resp.Outputs {
				ins[i] = Input{Name: o.Name, Tensor: o.Tensor, Parameters: o.Parameters, Binary: o.Binary}
			}
			checkInputs(t, ins, body, headerLen)
			enc, hl, err := AppendResponse(nil, resp)
			if err != nil {
				t.Fatalf("AppendResponse of a decoded response: %v", err)
			}
			back, err := DecodeResponse(enc, int64(hl))
			if err != nil {
				t.Fatalf("DecodeResponse of AppendResponse: %v\n%q", err, enc)
			}
			if back.ModelName != resp.ModelName || back.ModelVersion != resp.ModelVersion || back.ID != resp.ID || len(back.Outputs) != len(resp.Outputs) {
				t.Fatalf("round trip changed the response: %+v, then %+v", resp, back)
			}
			for i, o := range resp.Outputs {
				b := back.Outputs[i]
				if b.Name != o.Name || b.Binary != o.Binary || !sameData(b.Tensor, o.Tensor) || !sameParams(b.Parameters, o.Parameters) {
					t.Fatalf("round trip changed output %q: %+v, then %+v", o.Name, o, b)
				}
			}
		})
	})
}

// checkInputs holds decoded tensors to their contract: a v2 datatype,
// data that fills the shape, no more elements than the body has bytes,
// binary data only with the header, and binary_data_size adding up to the
// binary part.
func checkInputs(t *testing.T, ins []Input, body []byte, headerLen int64) {
	t.Helper()
	elems, binBytes := 0, 0
	for _, in := range ins {
		if err := in.Tensor.Validate(); err != nil {
			t.Fatalf("%q: %v", in.Name, err)
		}
		if _, ok := Datatype(in.Tensor.DType); !ok {
			t.Fatalf("%q: element type %v", in.Name, in.Tensor.DType)
		}
		elems += in.Tensor.Len()
		if in.Binary {
			if headerLen < 0 {
				t.Fatalf("%q is binary in a body without %s", in.Name, HeaderLength)
			}
			binBytes += binarySize(in.Tensor)
		}
	}
	if elems > len(body) {
		t.Fatalf("%d elements from a %d-byte body", elems, len(body))
	}
	if want := 0; headerLen >= 0 {
		want = len(body) - int(headerLen)
		if binBytes != want {
			t.Fatalf("binary tensors of %d bytes from %d bytes of binary data", binBytes, want)
		}
	}
}

// sameData is equality of datatype, shape and the bytes of the elements
// (NaNs included).
func sameData(a, b *onnxrt.Tensor) bool {
	return a.DType == b.DType && slices.Equal(a.Shape, b.Shape) && bytes.Equal(appendBinary(nil, a), appendBinary(nil, b))
}

// sameParams compares parameters but for those that say how data is sent,
// which encoding writes afresh.
func sameParams(a, b Parameters) bool {
	strip := func(p Parameters) map[string]string {
		m := map[string]string{}
		for k, v := range p {
			if k != ParamBinarySize && k != ParamBinary {
				m[k] = string(v)
			}
		}
		return m
	}
	return maps.Equal(strip(a), strip(b))
}

func readGoldenF(f *testing.F) golden {
	var g golden
	if err := json.Unmarshal(fuzzcheck.File(f, filepath.Join("testdata", "golden.json")), &g); err != nil {
		f.Fatal(err)
	}
	return g
}

func checkOneLine(t *testing.T, err error) {
	t.Helper()
	if msg := err.Error(); msg == "" || strings.ContainsAny(msg, "\r\n") {
		t.Fatalf("error %q is not one line", msg)
	}
}
