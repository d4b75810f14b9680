package onnxrt

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/sslzoo/sslzoo/export/onnxpb"
)

// qInit is an int8 or uint8 initializer (ONNX keeps both in int32_data).
func qInit(name string, dt DType, v ...int32) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(dt)), Dims: []int64{int64(len(v))}, Int32Data: v}
}

// TestQDQMatchesORT: int8 and uint8, per tensor and per axis (the node
// tests have uint8 only), with ties to round and values to saturate, give
// ONNX Runtime's integers and floats.
func TestQDQMatchesORT(t *testing.T) {
	needORT(t)
	scalarZero := &onnxpb.TensorProto{Name: proto.String("zu"), DataType: proto.Int32(int32(Uint8)), Int32Data: []int32{131}}
	outs := []*onnxpb.ValueInfoProto{
		tensorValue("q8", Int8, nil), tensorValue("d8", Float32, nil),
		tensorValue("qu", Uint8, nil), tensorValue("du", Float32, nil),
		tensorValue("q0", Uint8, nil), tensorValue("ql", Int8, nil), tensorValue("dl", Float32, nil),
	}
	b := model(&onnxpb.GraphProto{
		Name: proto.String("qdq"),
		Node: []*onnxpb.NodeProto{
			node("QuantizeLinear", []string{"x", "s3", "z3"}, []string{"q8"}, intAttr("axis", 1)),
			node("DequantizeLinear", []string{"q8", "s3", "z3"}, []string{"d8"}, intAttr("axis", 1)),
			node("QuantizeLinear", []string{"x", "s", "zu"}, []string{"qu"}),
			node("DequantizeLinear", []string{"qu", "s", "zu"}, []string{"du"}),
			node("QuantizeLinear", []string{"x", "s"}, []string{"q0"}),
			node("QuantizeLinear", []string{"x", "s4", "z4"}, []string{"ql"}, intAttr("axis", -1)),
			node("DequantizeLinear", []string{"ql", "s4", "z4"}, []string{"dl"}, intAttr("axis", -1)),
		},
		Initializer: []*onnxpb.TensorProto{
			{Name: proto.String("s3"), DataType: proto.Int32(int32(Float32)), Dims: []int64{3}, FloatData: []float32{0.5, 0.1, 2.5}},
			qInit("z3", Int8, 0, -3, 5),
			scalarInit("s", 0.5), scalarZero,
			{Name: proto.String("s4"), DataType: proto.Int32(int32(Float32)), Dims: []int64{4}, FloatData: []float32{0.5, 0.25, 0.05, 1}},
			qInit("z4", Int8, -128, 127, 0, 1),
		},
		Input:  []*onnxpb.ValueInfoProto{tensorValue("x", Float32, dims(2, 3, 4))},
		Output: outs,
	}, nil)
	x := make([]float32, 24)
	for i := range x {
		x[i] = float32(i-12) * 1.25 // x/0.5 lands on ties; x/0.05 saturates
	}
	matchORT(t, "qdq", b, 0, NewTensor([]int{2, 3, 4}, x))
}
