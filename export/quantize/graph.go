package quantize

import (
	"encoding/binary"
	"math"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/sslzoo/sslzoo/export"
	"github.com/sslzoo/sslzoo/export/onnxpb"
)

// foldBatchNorms merges each inference BatchNormalization into the Conv
// that alone feeds it: W' = W*k, b' = (b-mean)*k + beta, k =
// gamma/sqrt(var+eps) per channel. The Conv takes over the BN's output
// name, so every other tensor keeps its name (and its calibration range).
func (x *graph) foldBatchNorms() error {
	producer := map[string]*onnxpb.NodeProto{}
	for _, n := range x.g.GetNode() {
		for _, o := range n.GetOutput() {
			producer[o] = n
		}
	}
	var drop []*onnxpb.NodeProto
	for _, bn := range x.g.GetNode() {
		in := bn.GetInput()
		if bn.GetOpType() != "BatchNormalization" || bn.GetDomain() != "" || len(in) != 5 || len(bn.GetOutput()) != 1 {
			continue
		}
		conv := producer[in[0]]
		if conv == nil || conv.GetOpType() != "Conv" || conv.GetDomain() != "" || len(x.readers[in[0]]) != 1 || x.outputs[in[0]] {
			continue
		}
		w := x.floatInit(conv.GetInput()[1])
		p := make([][]float32, 4)
		ok := w != nil && len(w.Shape) >= 3
		for j := range p {
			if t := x.floatInit(in[j+1]); ok && t != nil && len(t.Shape) == 1 && t.Shape[0] == w.Shape[0] {
				p[j] = t.Data.([]float32)
			} else {
				ok = false
			}
		}
		var b []float32
		if ci := conv.GetInput(); ok && len(ci) > 2 && ci[2] != "" {
			if t := x.floatInit(ci[2]); t != nil && len(t.Shape) == 1 && t.Shape[0] == w.Shape[0] {
				b = t.Data.([]float32)
			} else {
				ok = false
			}
		}
		if !ok {
			continue
		}
		eps := float64(attrFloat(bn, "epsilon", 1e-5))
		oc := w.Shape[0]
		inner := len(w.Data.([]float32)) / oc
		nw := slices.Clone(w.Data.([]float32))
		nb := make([]float32, oc)
		for c := range oc {
			k := float64(p[0][c]) / math.Sqrt(float64(p[3][c])+eps)
			for i := c * inner; i < (c+1)*inner; i++ {
				nw[i] = float32(float64(nw[i]) * k)
			}
			bc := 0.0
			if b != nil {
				bc = float64(b[c])
			}
			nb[c] = float32((bc-float64(p[2][c]))*k + float64(p[1][c]))
		}
		wName, bName := x.fresh(conv.GetInput()[1]+"_bn_folded"), x.fresh(conv.GetInput()[1]+"_bn_folded_bias")
		x.g.Initializer = append(x.g.Initializer, export.FloatTensor(wName, w.Shape, nw), export.FloatTensor(bName, []int{oc}, nb))
		x.inits[wName], x.inits[bName] = x.g.Initializer[len(x.g.Initializer)-2], x.g.Initializer[len(x.g.Initializer)-1]
		conv.Input = []string{conv.GetInput()[0], wName, bName}
		conv.Output = []string{bn.GetOutput()[0]}
		drop = append(drop, bn)
	}
	x.g.Node = slices.DeleteFunc(x.g.Node, func(n *onnxpb.NodeProto) bool { return slices.Contains(drop, n) })
	dropUnused(x.g)
	return nil
}

// The initializers are written to raw_data, little-endian, as every ONNX
// reader accepts (export.RawTensor); a nil shape is a scalar.
func int8Tensor(name string, shape []int, data []int8) *onnxpb.TensorProto {
	raw := make([]byte, len(data))
	for i, v := range data {
		raw[i] = byte(v)
	}
	return export.RawTensor(name, onnxpb.TensorProto_INT8, shape, raw)
}

func uint8Tensor(name string, data []uint8) *onnxpb.TensorProto {
	return export.RawTensor(name, onnxpb.TensorProto_UINT8, nil, slices.Clone(data))
}

func int32Tensor(name string, data []int32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], uint32(v))
	}
	return export.RawTensor(name, onnxpb.TensorProto_INT32, []int{len(data)}, raw)
}

func aInt(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}
