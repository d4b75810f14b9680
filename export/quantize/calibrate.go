package quantize

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/sslzoo/sslzoo/export/onnxpb"
	"github.com/sslzoo/sslzoo/onnxrt"
)

// ErrNoCalibrationData: the calibration set yielded no batch.
var ErrNoCalibrationData = errors.New("quantize: the calibration set is empty")

// Calibrate runs the float model m over batches (one tensor per graph
// input, in order) and returns the min/max of every tensor QDQ needs,
// those Tensors lists. It runs on ONNX Runtime when its library loads,
// else on the Go engine; the tensors are read by adding them to the
// graph's outputs.
func Calibrate(m *onnxpb.ModelProto, batches iter.Seq2[[]*onnxrt.Tensor, error]) (map[string]Range, error) {
	names, err := Tensors(m)
	if err != nil {
		return nil, err
	}
	probe := proto.Clone(m).(*onnxpb.ModelProto)
	g := probe.GetGraph()
	inputs := map[string]int{} // graph inputs among names: read from the batch itself
	for i, v := range g.GetInput() {
		inputs[v.GetName()] = i
	}
	var probed []string
	for _, name := range names {
		if _, ok := inputs[name]; ok {
			continue
		}
		probed = append(probed, name)
		if !slices.ContainsFunc(g.GetOutput(), func(v *onnxpb.ValueInfoProto) bool { return v.GetName() == name }) {
			g.Output = append(g.Output, floatValue(name))
		}
	}
	eng, err := openEngine(probe)
	if err != nil {
		return nil, fmt.Errorf("quantize: calibration model: %w", err)
	}
	defer eng.Close()
	outIndex := map[string]int{}
	for i, v := range eng.Outputs() {
		outIndex[v.Name] = i
	}
	ranges := map[string]Range{}
	track := func(name string, t *onnxrt.Tensor) error {
		d, ok := t.Data.([]float32)
		if !ok {
			return fmt.Errorf("quantize: tensor %q is %v, not float32", name, t.DType)
		}
		r, seen := ranges[name]
		if !seen {
			r = Range{Min: float32(math.Inf(1)), Max: float32(math.Inf(-1))}
		}
		for _, v := range d {
			r.Min, r.Max = min(r.Min, v), max(r.Max, v)
		}
		ranges[name] = r
		return nil
	}
	n := 0
	for in, err := range batches {
		if err != nil {
			return nil, fmt.Errorf("quantize: calibration data: %w", err)
		}
		out, err := eng.Run(in...)
		if err != nil {
			return nil, fmt.Errorf("quantize: calibration batch %d: %w", n, err)
		}
		for _, name := range names {
			var t *onnxrt.Tensor
			if i, ok := inputs[name]; ok {
				t = in[i]
			} else {
				t = out[outIndex[name]]
			}
			if err := track(name, t); err != nil {
				return nil, err
			}
		}
		n++
	}
	if n == 0 {
		return nil, ErrNoCalibrationData
	}
	return ranges, nil
}

// Quantize calibrates m on batches and returns its QDQ form.
func Quantize(m *onnxpb.ModelProto, batches iter.Seq2[[]*onnxrt.Tensor, error]) (*onnxpb.ModelProto, error) {
	ranges, err := Calibrate(m, batches)
	if err != nil {
		return nil, err
	}
	return QDQ(m, ranges)
}

// ortAvailable says whether calibration runs on ONNX Runtime (a variable
// so that tests can take the Go engine too).
var ortAvailable = func() bool { return onnxrt.Available() == nil }

// openEngine loads m on ONNX Runtime when it is available, else on the Go
// engine.
func openEngine(m *onnxpb.ModelProto) (onnxrt.Engine, error) {
	if !ortAvailable() {
		return onnxrt.OpenGoModel("calibration", m)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return onnxrt.OpenBytes("calibration", b, onnxrt.Options{})
}

func floatValue(name string) *onnxpb.ValueInfoProto {
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT))}}}}
}
