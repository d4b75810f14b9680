package export

import (
	"encoding/binary"
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/sslzoo/sslzoo/export/onnxpb"
)

// builder accumulates an ONNX graph with unique value names.
type builder struct {
	g      *onnxpb.GraphProto
	used   map[string]bool
	count  map[string]int
	consts map[string]string // scalar/int constant cache: key -> initializer name
}

func newBuilder(name string) *builder {
	return &builder{
		g:      &onnxpb.GraphProto{Name: proto.String(name)},
		used:   map[string]bool{},
		count:  map[string]int{},
		consts: map[string]string{},
	}
}

// fresh returns an unused value name starting with prefix.
func (b *builder) fresh(prefix string) string {
	for {
		b.count[prefix]++
		n := fmt.Sprintf("%s_%d", prefix, b.count[prefix])
		if !b.used[n] {
			b.used[n] = true
			return n
		}
	}
}

// claim reserves an exact name; false when it is taken.
func (b *builder) claim(name string) bool {
	if b.used[name] {
		return false
	}
	b.used[name] = true
	return true
}

// node appends one ONNX node.
func (b *builder) node(op string, in, out []string, attrs ...*onnxpb.AttributeProto) {
	b.g.Node = append(b.g.Node, &onnxpb.NodeProto{
		OpType:    proto.String(op),
		Name:      proto.String(fmt.Sprintf("%s_%d", op, len(b.g.Node))),
		Input:     in,
		Output:    out,
		Attribute: attrs,
	})
}

// op1 appends a node with one output named fresh from prefix and returns it.
func (b *builder) op1(op string, in []string, attrs ...*onnxpb.AttributeProto) string {
	out := b.fresh(lower(op))
	b.node(op, in, []string{out}, attrs...)
	return out
}

func lower(s string) string {
	out := make([]byte, 0, len(s)+4)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			if i > 0 {
				out = append(out, '_')
			}
			c += 'a' - 'A'
		}
		out = append(out, c)
	}
	return string(out)
}

// initializer adds a float32 tensor under name (already claimed).
func (b *builder) initializer(name string, shape []int, data []float32) {
	b.g.Initializer = append(b.g.Initializer, FloatTensor(name, shape, data))
}

// constF32 returns the name of a float32 constant (deduplicated), shape
// [] for one value.
func (b *builder) constF32(shape []int, data ...float32) string {
	key := fmt.Sprintf("f%v%v", shape, data)
	if n, ok := b.consts[key]; ok {
		return n
	}
	n := b.fresh("const")
	b.initializer(n, shape, data)
	b.consts[key] = n
	return n
}

// constI64 returns the name of an int64 constant of the given shape.
func (b *builder) constI64(shape []int, data ...int64) string {
	key := fmt.Sprintf("i%v%v", shape, data)
	if n, ok := b.consts[key]; ok {
		return n
	}
	n := b.fresh("const")
	b.g.Initializer = append(b.g.Initializer, int64Tensor(n, shape, data))
	b.consts[key] = n
	return n
}

func dims64(shape []int) []int64 {
	d := make([]int64, len(shape))
	for i, v := range shape {
		d[i] = int64(v)
	}
	return d
}

// FloatTensor is an initializer of float32 data, little-endian in
// raw_data, the compact form every ONNX reader accepts.
func FloatTensor(name string, shape []int, data []float32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return RawTensor(name, onnxpb.TensorProto_FLOAT, shape, raw)
}

// RawTensor is an initializer of type dt whose little-endian bytes are
// raw; a nil shape is a scalar.
func RawTensor(name string, dt onnxpb.TensorProto_DataType, shape []int, raw []byte) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(dt)), Dims: dims64(shape), RawData: raw}
}

func int64Tensor(name string, shape []int, data []int64) *onnxpb.TensorProto {
	raw := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return RawTensor(name, onnxpb.TensorProto_INT64, shape, raw)
}

func aInt(name string, v int) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(int64(v))}
}

func aInts(name string, v []int) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: dims64(v)}
}

func aFloat(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

// valueInfo declares a float32 tensor value; a dimension of -1 becomes the
// symbolic batch axis.
func valueInfo(name string, elem onnxpb.TensorProto_DataType, shape []int) *onnxpb.ValueInfoProto {
	s := &onnxpb.TensorShapeProto{}
	for _, d := range shape {
		dim := &onnxpb.TensorShapeProto_Dimension{}
		if d < 0 {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: BatchAxis}
		} else {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}
		}
		s.Dim = append(s.Dim, dim)
	}
	return &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(elem)), Shape: s}}},
	}
}
