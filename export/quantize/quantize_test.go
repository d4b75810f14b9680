package quantize

import (
	"errors"
	"iter"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/sslzoo/sslzoo/export"
	"github.com/sslzoo/sslzoo/export/onnxpb"
	"github.com/sslzoo/sslzoo/onnxrt"
)

func randInit(rng *rand.Rand, name string, shape ...int) *onnxpb.TensorProto {
	n := 1
	for _, d := range shape {
		n *= d
	}
	d := make([]float32, n)
	for i := range d {
		d[i] = float32(rng.NormFloat64() * 0.3)
	}
	return export.FloatTensor(name, shape, d)
}

func positiveInit(rng *rand.Rand, name string, n int) *onnxpb.TensorProto {
	d := make([]float32, n)
	for i := range d {
		d[i] = 0.5 + rng.Float32()
	}
	return export.FloatTensor(name, []int{n}, d)
}

func node(op string, in []string, out string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{OpType: proto.String(op), Name: proto.String(out), Input: in, Output: []string{out}, Attribute: attrs}
}

func ints(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

func value(name string, shape ...any) *onnxpb.ValueInfoProto {
	v := floatValue(name)
	s := &onnxpb.TensorShapeProto{}
	for _, d := range shape {
		dim := &onnxpb.TensorShapeProto_Dimension{}
		if p, ok := d.(string); ok {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: p}
		} else {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d.(int))}
		}
		s.Dim = append(s.Dim, dim)
	}
	v.GetType().GetTensorType().Shape = s
	return v
}

// smallModel: Conv+BN+Relu, Conv with a bias, a residual Add, pooling,
// MatMul and Gemm (transB) heads: every case QDQ rewrites.
func smallModel() *onnxpb.ModelProto {
	rng := rand.New(rand.NewPCG(1, 2))
	pads := ints("pads", 1, 1, 1, 1)
	return &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: proto.Int64(17)}},
		Graph: &onnxpb.GraphProto{
			Name: proto.String("small"),
			Node: []*onnxpb.NodeProto{
				node("Conv", []string{"x", "w1"}, "c1", pads),
				node("BatchNormalization", []string{"c1", "g1", "b1", "m1", "v1"}, "bn1"),
				node("Relu", []string{"bn1"}, "r1"),
				node("Conv", []string{"r1", "w2", "cb2"}, "c2", pads),
				node("Add", []string{"c2", "r1"}, "a2"),
				node("Relu", []string{"a2"}, "r2"),
				node("GlobalAveragePool", []string{"r2"}, "gap"),
				node("Flatten", []string{"gap"}, "flat"),
				node("MatMul", []string{"flat", "w3"}, "mm"),
				node("Gemm", []string{"mm", "w4", "gb4"}, "y", &onnxpb.AttributeProto{Name: proto.String("transB"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(1)}),
			},
			Initializer: []*onnxpb.TensorProto{
				randInit(rng, "w1", 4, 3, 3, 3), positiveInit(rng, "g1", 4), randInit(rng, "b1", 4), randInit(rng, "m1", 4), positiveInit(rng, "v1", 4),
				randInit(rng, "w2", 4, 4, 3, 3), randInit(rng, "cb2", 4), randInit(rng, "w3", 4, 6), randInit(rng, "w4", 5, 6), randInit(rng, "gb4", 5),
			},
			Input:  []*onnxpb.ValueInfoProto{value("x", "batch", 3, 8, 8)},
			Output: []*onnxpb.ValueInfoProto{value("y", "batch", 5)},
		},
	}
}

func images(seed uint64, batches, n int) iter.Seq2[[]*onnxrt.Tensor, error] {
	return func(yield func([]*onnxrt.Tensor, error) bool) {
		rng := rand.New(rand.NewPCG(seed, 7))
		for range batches {
			d := make([]float32, n*3*8*8)
			for i := range d {
				d[i] = float32(rng.NormFloat64())
			}
			if !yield([]*onnxrt.Tensor{onnxrt.NewTensor([]int{n, 3, 8, 8}, d)}, nil) {
				return
			}
		}
	}
}

func run(t *testing.T, e onnxrt.Engine, x *onnxrt.Tensor) []float32 {
	t.Helper()
	out, err := e.Run(x)
	if err != nil {
		t.Fatal(err)
	}
	return out[0].Data.([]float32)
}

func relErr(a, b []float32) float64 {
	var num, den float64
	for i := range a {
		num += float64(a[i]-b[i]) * float64(a[i]-b[i])
		den += float64(b[i]) * float64(b[i])
	}
	return math.Sqrt(num / den)
}

func quantized(t *testing.T) (*onnxpb.ModelProto, *onnxpb.ModelProto) {
	t.Helper()
	m := smallModel()
	q, err := Quantize(m, images(1, 4, 8))
	if err != nil {
		t.Fatal(err)
	}
	return m, q
}

// TestQDQStructure: BN folded; every weight an int8 initializer behind a
// per-channel DequantizeLinear on the right axis; every activation input a
// Q -> DQ pair, the residual Add's output too; biases int32; opset kept at
// 17.
func TestQDQStructure(t *testing.T) {
	m, q := quantized(t)
	g := q.GetGraph()
	x := index(g)
	producer := map[string]*onnxpb.NodeProto{}
	for _, n := range g.GetNode() {
		producer[n.GetOutput()[0]] = n
		if n.GetOpType() == "BatchNormalization" {
			t.Error("BatchNormalization left unfolded")
		}
	}
	axes := map[string]int64{"Conv": 0, "MatMul": 1, "Gemm": 0} // Gemm: transB
	count := 0
	for _, n := range g.GetNode() {
		want, ok := axes[n.GetOpType()]
		if !ok {
			continue
		}
		count++
		in := n.GetInput()
		dq := producer[in[1]]
		if dq.GetOpType() != "DequantizeLinear" || attrInt(dq, "axis", 1) != want {
			t.Errorf("%s %s: weight from %s axis %d, want DequantizeLinear axis %d", n.GetOpType(), n.GetName(), dq.GetOpType(), attrInt(dq, "axis", 1), want)
		}
		if w := x.inits[dq.GetInput()[0]]; w == nil || onnxrt.DType(w.GetDataType()) != onnxrt.Int8 {
			t.Errorf("%s %s: weight is not an int8 initializer", n.GetOpType(), n.GetName())
		}
		a := producer[in[0]]
		if a.GetOpType() != "DequantizeLinear" || producer[a.GetInput()[0]].GetOpType() != "QuantizeLinear" {
			t.Errorf("%s %s: activation not through QuantizeLinear -> DequantizeLinear", n.GetOpType(), n.GetName())
		}
		if z := x.inits[a.GetInput()[2]]; onnxrt.DType(z.GetDataType()) != onnxrt.Uint8 || len(z.GetDims()) != 0 {
			t.Errorf("%s %s: activation zero point is not a uint8 scalar", n.GetOpType(), n.GetName())
		}
		if len(in) > 2 {
			b := producer[in[2]]
			if b.GetOpType() != "DequantizeLinear" || onnxrt.DType(x.inits[b.GetInput()[0]].GetDataType()) != onnxrt.Int32 {
				t.Errorf("%s %s: bias is not int32 behind DequantizeLinear", n.GetOpType(), n.GetName())
			}
		}
	}
	// The residual Add's output (after its Relu) has its own pair, so the
	// pooling reads a dequantized value.
	if gap := producer[producer["gap"].GetInput()[0]]; gap.GetOpType() != "DequantizeLinear" || producer[gap.GetInput()[0]].GetOpType() != "QuantizeLinear" {
		t.Errorf("GlobalAveragePool reads %s, want the residual Add's output through QuantizeLinear -> DequantizeLinear", gap.GetOpType())
	}
	if count != 4 {
		t.Errorf("%d Conv/MatMul/Gemm nodes, want 4", count)
	}
	for _, tp := range g.GetInitializer() {
		if slices.Contains([]string{"w1", "w2", "w3", "w4"}, tp.GetName()) {
			t.Errorf("float weight %s still in the graph", tp.GetName())
		}
	}
	if v := q.GetOpsetImport()[0].GetVersion(); v != 17 {
		t.Errorf("opset %d, want 17", v)
	}
	if len(m.GetGraph().GetNode()) != 10 {
		t.Error("QDQ modified its input model")
	}
}

// TestQDQCloseToFloat: the Go engine runs the QDQ model within a few
// per cent of the float model on images it was not calibrated on.
func TestQDQCloseToFloat(t *testing.T) {
	m, q := quantized(t)
	fs, err := onnxrt.OpenGoModel("fp32", m)
	if err != nil {
		t.Fatal(err)
	}
	qs, err := onnxrt.OpenGoModel("int8", q)
	if err != nil {
		t.Fatal(err)
	}
	for x := range images(99, 1, 16) {
		e := relErr(run(t, qs, x[0]), run(t, fs, x[0]))
		t.Logf("QDQ vs float32 on the Go engine: relative error %.4f", e)
		if e > 0.05 {
			t.Errorf("relative error %.4f, want < 0.05", e)
		}
	}
}

// TestQDQMatchesORT: ONNX Runtime (its int8 kernels) and the Go engine (the
// QDQ formulas in float) agree on the quantized model.
func TestQDQMatchesORT(t *testing.T) {
	if err := onnxrt.Available(); err != nil {
		t.Skipf("ONNX Runtime unavailable (%v)", err)
	}
	_, q := quantized(t)
	b, err := proto.Marshal(q)
	if err != nil {
		t.Fatal(err)
	}
	ort, err := onnxrt.OpenBytes("int8", b, onnxrt.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ort.Close()
	gs, err := onnxrt.OpenGoModel("int8", q)
	if err != nil {
		t.Fatal(err)
	}
	for x := range images(99, 1, 16) {
		e := relErr(run(t, gs, x[0]), run(t, ort, x[0]))
		t.Logf("Go engine vs ONNX Runtime on the QDQ model: relative error %.2g", e)
		if e > 0.01 {
			t.Errorf("relative error %.4f, want < 0.01", e)
		}
	}
}

func TestRefusals(t *testing.T) {
	m := smallModel()
	if _, err := Quantize(m, images(1, 0, 8)); !errors.Is(err, ErrNoCalibrationData) {
		t.Errorf("empty calibration set: %v, want ErrNoCalibrationData", err)
	}
	m.GetGraph().Node = m.GetGraph().Node[6:8] // pooling and Flatten only
	m.GetGraph().Node[0].Input[0] = "x"
	m.GetGraph().Node[1].Output[0] = "y"
	if _, err := Tensors(m); !errors.Is(err, ErrNothingToQuantize) {
		t.Errorf("no weights: %v, want ErrNothingToQuantize", err)
	}
	if _, err := QDQ(smallModel(), map[string]Range{"x": {-1, 1}}); err == nil {
		t.Error("QDQ with ranges missing: no error")
	}
}

// TestCalibrateEngines: the ranges the Go engine measures are ONNX
// Runtime's.
func TestCalibrateEngines(t *testing.T) {
	if err := onnxrt.Available(); err != nil {
		t.Skipf("ONNX Runtime unavailable (%v)", err)
	}
	want, err := Calibrate(smallModel(), images(1, 2, 8))
	if err != nil {
		t.Fatal(err)
	}
	defer func(f func() bool) { ortAvailable = f }(ortAvailable)
	ortAvailable = func() bool { return false }
	got, err := Calibrate(smallModel(), images(1, 2, 8))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(got) != 6 {
		t.Fatalf("%d ranges on the Go engine, %d on ONNX Runtime, want 6 (x, r1, c2, r2, flat, mm)", len(got), len(want))
	}
	for name, w := range want {
		g := got[name]
		if math.Abs(float64(g.Min-w.Min)) > 1e-4*(1+math.Abs(float64(w.Min))) || math.Abs(float64(g.Max-w.Max)) > 1e-4*(1+math.Abs(float64(w.Max))) {
			t.Errorf("%s: Go engine %v, ONNX Runtime %v", name, g, w)
		}
	}
}
