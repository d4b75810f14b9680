package onnxpb_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sslzoo/sslzoo/export/onnxpb"
)

const nodeTests = "/usr/share/libonnx-testdata/data/node"

// unknownFields reports the path of the first message in m that carries
// bytes our schema did not recognise.
func unknownFields(m protoreflect.Message, path string) string {
	if len(m.GetUnknown()) > 0 {
		return path
	}
	bad := ""
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind {
			return true
		}
		p := path + "." + string(fd.Name())
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && bad == ""; i++ {
				bad = unknownFields(l.Get(i).Message(), p)
			}
		case !fd.IsMap():
			bad = unknownFields(v.Message(), p)
		}
		return bad == ""
	})
	return bad
}

// TestRoundTripNodeTests decodes every model and tensor file of the ONNX
// node test suite, checks that no field was unknown to our schema, and that
// encoding again gives back the very same bytes.
func TestRoundTripNodeTests(t *testing.T) {
	models, _ := filepath.Glob(filepath.Join(nodeTests, "*", "model.onnx"))
	if len(models) == 0 {
		t.Skipf("no ONNX node tests in %s (Debian package libonnx-testdata)", nodeTests)
	}
	opts := proto.MarshalOptions{Deterministic: true}
	check := func(path string, m proto.Message) {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := proto.Unmarshal(raw, m); err != nil {
			t.Errorf("%s: %v", path, err)
			return
		}
		if p := unknownFields(m.ProtoReflect(), ""); p != "" {
			t.Errorf("%s: unknown fields at %q", path, p)
		}
		again, err := opts.Marshal(m)
		if err != nil {
			t.Errorf("%s: marshal: %v", path, err)
			return
		}
		if !bytes.Equal(raw, again) {
			t.Errorf("%s: re-encoded %d bytes differ from the original %d", path, len(again), len(raw))
		}
	}
	nd := 0
	for _, p := range models {
		m := &onnxpb.ModelProto{}
		check(p, m)
		dir := filepath.Join(filepath.Dir(p), "test_data_set_0")
		for prefix, vals := range map[string][]*onnxpb.ValueInfoProto{"input": m.GetGraph().GetInput(), "output": m.GetGraph().GetOutput()} {
			for i, v := range vals {
				f := filepath.Join(dir, fmt.Sprintf("%s_%d.pb", prefix, i))
				if _, err := os.Stat(f); err != nil {
					continue // inputs fed by initializers have no file
				}
				nd++
				check(f, dataMessage(v.GetType()))
			}
		}
	}
	t.Logf("round-tripped %d models and %d data files", len(models), nd)
}

// dataMessage is the message a test-data file of value type ty holds.
func dataMessage(ty *onnxpb.TypeProto) proto.Message {
	switch ty.GetValue().(type) {
	case *onnxpb.TypeProto_SequenceType:
		return &onnxpb.SequenceProto{}
	case *onnxpb.TypeProto_MapType:
		return &onnxpb.MapProto{}
	case *onnxpb.TypeProto_OptionalType:
		return &onnxpb.OptionalProto{}
	}
	return &onnxpb.TensorProto{}
}

// TestCheckerAcceptsOurModel writes a small model with these types and has
// the reference ONNX checker (Debian python3-onnx) validate it.
func TestCheckerAcceptsOurModel(t *testing.T) {
	py := "/usr/bin/python3"
	if exec.Command(py, "-c", "import onnx").Run() != nil {
		t.Skip("python3-onnx not installed (/usr/bin/python3 -c 'import onnx' failed)")
	}
	f32 := int32(onnxpb.TensorProto_FLOAT)
	dims := func(ds ...any) *onnxpb.TensorShapeProto {
		s := &onnxpb.TensorShapeProto{}
		for _, d := range ds {
			dim := &onnxpb.TensorShapeProto_Dimension{}
			switch d := d.(type) {
			case int:
				dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}
			case string:
				dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d}
			}
			s.Dim = append(s.Dim, dim)
		}
		return s
	}
	value := func(name string, shape *onnxpb.TensorShapeProto) *onnxpb.ValueInfoProto {
		return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{
			Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(f32), Shape: shape}}}}
	}
	m := &onnxpb.ModelProto{
		IrVersion:    proto.Int64(8),
		ProducerName: proto.String("sslzoo-test"),
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		MetadataProps: []*onnxpb.StringStringEntryProto{
			{Key: proto.String("sslzoo.test"), Value: proto.String("yes")},
		},
		Graph: &onnxpb.GraphProto{
			Name: proto.String("g"),
			Node: []*onnxpb.NodeProto{
				{OpType: proto.String("Gemm"), Input: []string{"x", "w", "b"}, Output: []string{"y0"},
					Attribute: []*onnxpb.AttributeProto{{Name: proto.String("transB"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(1)}}},
				{OpType: proto.String("Relu"), Input: []string{"y0"}, Output: []string{"y"}},
			},
			Initializer: []*onnxpb.TensorProto{
				{Name: proto.String("w"), DataType: proto.Int32(f32), Dims: []int64{2, 3}, FloatData: []float32{1, 2, 3, 4, 5, 6}},
				{Name: proto.String("b"), DataType: proto.Int32(f32), Dims: []int64{2}, RawData: []byte{0, 0, 128, 63, 0, 0, 0, 64}},
			},
			Input:  []*onnxpb.ValueInfoProto{value("x", dims("batch", 3))},
			Output: []*onnxpb.ValueInfoProto{value("y", dims("batch", 2))},
		},
	}
	raw, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tiny.onnx")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	script := `import sys, onnx
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
assert m.graph.initializer[1].raw_data == b"\x00\x00\x80\x3f\x00\x00\x00\x40"
assert m.metadata_props[0].key == "sslzoo.test"
assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
print("ok")`
	out, err := exec.Command(py, "-c", script, path).CombinedOutput()
	if err != nil {
		t.Fatalf("onnx checker rejected our model: %v\n%s", err, out)
	}
}
