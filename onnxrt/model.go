package onnxrt

import (
	"fmt"
	"os"
	"strconv"
	"unicode"

	"google.golang.org/protobuf/proto"

	"github.com/sslzoo/sslzoo/export/onnxpb"
)

// ValueInfo describes a model input or output as the graph declares it.
type ValueInfo struct {
	Name string
	// Kind is "tensor", or "sequence", "map", "optional", "sparse_tensor"
	// for values sslzoo cannot pass through its API.
	Kind  string
	DType DType
	// Shape has -1 for a symbolic or unknown dimension; nil when the graph
	// declares no shape at all (unknown rank).
	Shape []int
	// DimParams holds the symbolic names ("batch") of dynamic dimensions,
	// "" for static ones.
	DimParams []string
}

// Static reports whether every dimension is known.
func (v ValueInfo) Static() bool {
	if v.Shape == nil {
		return false
	}
	for _, d := range v.Shape {
		if d < 0 {
			return false
		}
	}
	return true
}

func (v ValueInfo) String() string {
	if v.Kind != "tensor" {
		return fmt.Sprintf("%s (%s)", shownName(v.Name), v.Kind)
	}
	if v.Shape == nil {
		return fmt.Sprintf("%s %v [unknown rank]", shownName(v.Name), v.DType)
	}
	dims := make([]any, len(v.Shape))
	for i, d := range v.Shape {
		switch {
		case d >= 0:
			dims[i] = d
		case v.DimParams[i] != "":
			dims[i] = shownName(v.DimParams[i])
		default:
			dims[i] = "?"
		}
	}
	return fmt.Sprintf("%s %v %v", shownName(v.Name), v.DType, dims)
}

// shownName is a name from the file as errors print it: as it is, or
// quoted when it holds spaces, line breaks or other unprintable runes, so
// that a hostile name cannot break a one-line error apart.
func shownName(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if !unicode.IsGraphic(r) || unicode.IsSpace(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// ModelInfo is what a session needs to know about a model before running it.
type ModelInfo struct {
	Inputs   []ValueInfo // graph inputs that are not initializers
	Outputs  []ValueInfo
	Metadata map[string]string // metadata_props
	Opset    int64             // default-domain opset version
}

// ReadModelInfo parses an ONNX model (the file itself, not its external
// data) and lists its inputs, outputs and metadata.
func ReadModelInfo(data []byte) (*ModelInfo, error) {
	m, err := decodeModel(data)
	if err != nil {
		return nil, err
	}
	return modelInfo(m), nil
}

func decodeModel(data []byte) (*onnxpb.ModelProto, error) {
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("not an ONNX model (protobuf decode: %v)", err)
	}
	if m.GetGraph() == nil {
		return nil, fmt.Errorf("not an ONNX model (no graph)")
	}
	return m, nil
}

// modelInfo lists a decoded model's inputs, outputs and metadata.
func modelInfo(m *onnxpb.ModelProto) *ModelInfo {
	g := m.GetGraph()
	info := &ModelInfo{Metadata: map[string]string{}}
	for _, op := range m.GetOpsetImport() {
		if d := op.GetDomain(); d == "" || d == "ai.onnx" {
			info.Opset = op.GetVersion()
		}
	}
	for _, p := range m.GetMetadataProps() {
		info.Metadata[p.GetKey()] = p.GetValue()
	}
	inits := map[string]bool{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
	}
	for _, v := range g.GetInput() {
		if !inits[v.GetName()] {
			info.Inputs = append(info.Inputs, valueInfo(v))
		}
	}
	for _, v := range g.GetOutput() {
		info.Outputs = append(info.Outputs, valueInfo(v))
	}
	return info
}

// ReadModelInfoFile is ReadModelInfo on a file.
func ReadModelInfoFile(path string) (*ModelInfo, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	info, err := ReadModelInfo(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return info, nil
}

func valueInfo(v *onnxpb.ValueInfoProto) ValueInfo {
	vi := ValueInfo{Name: v.GetName()}
	switch t := v.GetType().GetValue().(type) {
	case *onnxpb.TypeProto_TensorType:
		vi.Kind = "tensor"
		vi.DType = DType(t.TensorType.GetElemType())
		if s := t.TensorType.GetShape(); s != nil {
			vi.Shape = make([]int, len(s.GetDim()))
			vi.DimParams = make([]string, len(s.GetDim()))
			for i, d := range s.GetDim() {
				vi.Shape[i] = -1
				switch dv := d.GetValue().(type) {
				case *onnxpb.TensorShapeProto_Dimension_DimValue:
					vi.Shape[i] = int(dv.DimValue)
				case *onnxpb.TensorShapeProto_Dimension_DimParam:
					vi.DimParams[i] = dv.DimParam
				}
			}
		}
	case *onnxpb.TypeProto_SequenceType:
		vi.Kind = "sequence"
	case *onnxpb.TypeProto_MapType:
		vi.Kind = "map"
	case *onnxpb.TypeProto_OptionalType:
		vi.Kind = "optional"
	case *onnxpb.TypeProto_SparseTensorType:
		vi.Kind = "sparse_tensor"
	default:
		vi.Kind = "unknown"
	}
	return vi
}
