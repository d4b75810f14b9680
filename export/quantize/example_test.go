package quantize_test

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/sslzoo/sslzoo/export/onnxpb"
	"github.com/sslzoo/sslzoo/export/quantize"
	"github.com/sslzoo/sslzoo/onnxrt"
)

// A one-MatMul model quantized with a known input range: the weight
// becomes int8 behind a per-column DequantizeLinear, the input passes
// through a uint8 QuantizeLinear -> DequantizeLinear pair. Calibrate
// measures such ranges by running the float model on sample inputs.
func ExampleQDQ() {
	f32 := func(name string, dims []int64, v ...float32) *onnxpb.TensorProto {
		return &onnxpb.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(onnxrt.Float32)), Dims: dims, FloatData: v}
	}
	tensor := func(name string) *onnxpb.ValueInfoProto {
		return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxrt.Float32))}}}}
	}
	m := &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: proto.Int64(17)}},
		Graph: &onnxpb.GraphProto{
			Name:        proto.String("linear"),
			Node:        []*onnxpb.NodeProto{{OpType: proto.String("MatMul"), Input: []string{"x", "w"}, Output: []string{"y"}}},
			Initializer: []*onnxpb.TensorProto{f32("w", []int64{3, 2}, 1, -2, 0.5, 4, -1, 1)},
			Input:       []*onnxpb.ValueInfoProto{tensor("x")},
			Output:      []*onnxpb.ValueInfoProto{tensor("y")},
		},
	}
	names, _ := quantize.Tensors(m)
	fmt.Println("needs ranges for", names)
	q, err := quantize.QDQ(m, map[string]quantize.Range{"x": {Min: -1, Max: 3}})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, n := range q.GetGraph().GetNode() {
		fmt.Println(n.GetOpType(), n.GetInput(), "->", n.GetOutput())
	}
	// Output:
	// needs ranges for [x]
	// QuantizeLinear [x x_scale x_zero_point] -> [x_quantized]
	// DequantizeLinear [x_quantized x_scale x_zero_point] -> [x_dequantized]
	// DequantizeLinear [w_quantized w_scale w_zero_point] -> [w_dequantized]
	// MatMul [x_dequantized w_dequantized] -> [y]
}
