package onnxrt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/sslzoo/sslzoo/export/onnxpb"
	"github.com/sslzoo/sslzoo/internal/fuzzcheck"
)

// fuzzPerByte is what one byte of a model may cost the Go engine: decoded
// protobuf messages (a 2-byte empty NodeProto is a ~200-byte struct), the
// engine's node, map and plan entries built from them, and the constants
// folded from data the file carries.
const fuzzPerByte = 1024

// fuzzMaxDeclared replaces maxDeclaredElements during the fuzz, so that a
// shape the file declares (ConstantOfShape, Expand, Resize ...) is held to
// what the allocation bound allows rather than to 8 GiB.
const fuzzMaxDeclared = 1 << 10

// fuzzMaxInput bounds the elements of the inputs FuzzOpenGo runs a loaded
// model on; models that declare larger inputs are only loaded.
const fuzzMaxInput = 256

// nodeTestSeeds picks, from ONNX's node tests (when installed), one small
// model per op the Go engine has.
func nodeTestSeeds(f *testing.F) {
	models, _ := filepath.Glob(filepath.Join("/usr/share/libonnx-testdata/data/node", "*", "model.onnx"))
	seen := map[string]bool{}
	for _, p := range models {
		b, err := os.ReadFile(p)
		if err != nil || len(b) > 1024 {
			continue
		}
		m := &onnxpb.ModelProto{}
		if proto.Unmarshal(b, m) != nil || len(m.GetGraph().GetNode()) == 0 {
			continue
		}
		op := m.GetGraph().GetNode()[0].GetOpType()
		if _, ok := goOps[op]; !ok || seen[op] {
			continue
		}
		seen[op] = true
		fuzzcheck.Seed(f, strings.TrimPrefix(filepath.Base(filepath.Dir(p)), "test_"), b)
	}
}

// FuzzOpenGo: any bytes decode to an error or a model; a model either
// loads on the Go engine or is refused with one line; a loaded model with
// small declared inputs runs to an error or to outputs whose data match
// their shapes. All of it within the allocation bound. The seeds are the
// models the package's tests build, their refused variants (a huge
// initializer without data, declared sizes past the limit, external data)
// and small ONNX node-test models.
func FuzzOpenGo(f *testing.F) {
	old := maxDeclaredElements
	maxDeclaredElements = fuzzMaxDeclared
	f.Cleanup(func() { maxDeclaredElements = old })

	fuzzcheck.Seed(f, "gemm_relu", gemmReluModel())
	fuzzcheck.Seed(f, "fusable", fusableModel())
	fuzzcheck.Seed(f, "residual", residualModel(false))
	fuzzcheck.Seed(f, "external", externalModel("w.bin"))
	fuzzcheck.Seed(f, "huge_empty_initializer", hugeEmptyInitializerModel())
	declared := func(nodes []*onnxpb.NodeProto, inits ...*onnxpb.TensorProto) []byte {
		return model(&onnxpb.GraphProto{
			Name: proto.String("declared"), Node: nodes, Initializer: inits,
			Input:  []*onnxpb.ValueInfoProto{tensorValue("x", Float32, dims(1))},
			Output: []*onnxpb.ValueInfoProto{tensorValue("y", Float32, nil)},
		}, nil)
	}
	fuzzcheck.Seed(f, "constantofshape_huge", declared([]*onnxpb.NodeProto{
		node("ConstantOfShape", []string{"huge"}, []string{"zeros"}),
		node("Add", []string{"x", "zeros"}, []string{"y"}),
	}, intInit("huge", 1<<20, 1<<20)))
	fuzzcheck.Seed(f, "reshape_overflow", declared([]*onnxpb.NodeProto{
		node("Reshape", []string{"x", "target"}, []string{"y"}),
	}, intInit("target", 1<<32, 1<<32, 0)))
	fuzzcheck.Seed(f, "expand_runtime", declared([]*onnxpb.NodeProto{
		node("Expand", []string{"x", "shape"}, []string{"y"}),
	}, intInit("shape", 4, 8)))
	nodeTestSeeds(f)

	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzcheck.Bounded(t, fuzzcheck.Limit(len(b), fuzzPerByte), func() {
			m, err := decodeModel(b)
			if err != nil {
				return
			}
			s, err := OpenGoModel("fuzz.onnx", m)
			if err != nil {
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("refusal is not one line: %q", err)
				}
				return
			}
			in, ok := fuzzInputs(s.Inputs())
			if !ok {
				return
			}
			out, err := s.Run(in...)
			if err != nil {
				return
			}
			if len(out) != len(s.Outputs()) {
				t.Fatalf("%d outputs, the model declares %d", len(out), len(s.Outputs()))
			}
			for i, o := range out {
				if err := o.Validate(); err != nil {
					t.Fatalf("output %s: %v", s.Outputs()[i].Name, err)
				}
			}
		})
	})
}

// fuzzInputs makes one small tensor per input, symbolic dimensions taken
// as 1, or reports false when an input is of unknown rank or too large.
func fuzzInputs(vis []ValueInfo) ([]*Tensor, bool) {
	in := make([]*Tensor, len(vis))
	for i, vi := range vis {
		if vi.Shape == nil {
			return nil, false
		}
		shape := make([]int, len(vi.Shape))
		n := 1
		for j, d := range vi.Shape {
			shape[j] = max(d, 1)
			if d < 0 {
				shape[j] = 1
			}
			if d == 0 {
				shape[j] = 0
			}
			if shape[j] > fuzzMaxInput {
				return nil, false
			}
			n *= shape[j]
			if n > fuzzMaxInput {
				return nil, false
			}
		}
		switch vi.DType {
		case Float32:
			v := make([]float32, n)
			for k := range v {
				v[k] = float32(k%5) - 2
			}
			in[i] = NewTensor(shape, v)
		case Int64:
			v := make([]int64, n)
			for k := range v {
				v[k] = int64(k % 3)
			}
			in[i] = NewTensor(shape, v)
		case Uint8:
			v := make([]uint8, n)
			for k := range v {
				v[k] = uint8(k)
			}
			in[i] = NewTensor(shape, v)
		default:
			return nil, false
		}
	}
	return in, true
}
