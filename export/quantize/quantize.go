// Package quantize turns a float32 ONNX model into a QDQ int8 one: static
// quantization with the weights of every Conv, MatMul and Gemm quantized
// per output channel and their activations per tensor, on ranges measured
// by running the float model over calibration data (Calibrate).
//
// The result is in ONNX's QDQ form (QuantizeLinear -> DequantizeLinear
// pairs around float ops), which any runtime can execute as written and
// ONNX Runtime rewrites into its int8 kernels (QLinearConv, QLinearMatMul).
// For those rewrites to apply, a quantized node must see only dequantized
// inputs and feed a QuantizeLinear, so QDQ also
//   - folds a BatchNormalization into the Conv before it,
//   - quantizes a Conv's or Gemm's bias to int32 at scale x_scale*w_scale,
//   - quantizes each quantized node's output (after a Relu that is its only
//     reader, which ONNX Runtime then drops as the quantization's clamp),
//   - quantizes the output of an Add whose two inputs are quantized (a
//     residual connection), so that it runs as QLinearAdd.
package quantize

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/sslzoo/sslzoo/export"
	"github.com/sslzoo/sslzoo/export/onnxpb"
	"github.com/sslzoo/sslzoo/onnxrt"
)

// Range is the span of values an activation tensor took in calibration.
type Range struct{ Min, Max float32 }

// ErrNothingToQuantize: the model has no Conv, MatMul or Gemm with a
// constant float weight.
var ErrNothingToQuantize = errors.New("no Conv, MatMul or Gemm with a constant float32 weight to quantize")

// minOpset is the first opset with per-axis DequantizeLinear.
const minOpset = 13

// target is one node whose weight QDQ quantizes.
type target struct {
	node  *onnxpb.NodeProto
	wAxis int  // the weight's output-channel axis
	bias  bool // input 2 is a constant bias quantized to int32
	in    string
	out   string // the activation quantized after it ("" if none)
}

// graph indexes a model's graph for rewriting.
type graph struct {
	g       *onnxpb.GraphProto
	inits   map[string]*onnxpb.TensorProto
	readers map[string][]*onnxpb.NodeProto
	outputs map[string]bool
	used    map[string]bool // every value and node name
}

func index(g *onnxpb.GraphProto) *graph {
	x := &graph{g: g, inits: map[string]*onnxpb.TensorProto{}, readers: map[string][]*onnxpb.NodeProto{},
		outputs: map[string]bool{}, used: map[string]bool{}}
	for _, t := range g.GetInitializer() {
		x.inits[t.GetName()] = t
		x.used[t.GetName()] = true
	}
	for _, v := range g.GetInput() {
		delete(x.inits, v.GetName()) // an initializer that is also an input may be overridden: not constant
		x.used[v.GetName()] = true
	}
	for _, v := range g.GetOutput() {
		x.outputs[v.GetName()] = true
	}
	for _, n := range g.GetNode() {
		x.used[n.GetName()] = true
		for _, in := range n.GetInput() {
			if in != "" && !slices.Contains(x.readers[in], n) {
				x.readers[in] = append(x.readers[in], n)
			}
		}
		for _, o := range n.GetOutput() {
			x.used[o] = true
		}
	}
	return x
}

// fresh is an unused name starting with base.
func (x *graph) fresh(base string) string {
	name := base
	for i := 1; x.used[name]; i++ {
		name = fmt.Sprintf("%s_%d", base, i)
	}
	x.used[name] = true
	return name
}

// floatInit is the named constant float32 initializer, or nil.
func (x *graph) floatInit(name string) *onnxrt.Tensor {
	tp := x.inits[name]
	if tp == nil || onnxrt.DType(tp.GetDataType()) != onnxrt.Float32 {
		return nil
	}
	t, err := onnxrt.TensorFromProto(tp)
	if err != nil {
		return nil
	}
	return t
}

func attrInt(n *onnxpb.NodeProto, name string, def int64) int64 {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return a.GetI()
		}
	}
	return def
}

func attrFloat(n *onnxpb.NodeProto, name string, def float32) float32 {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return a.GetF()
		}
	}
	return def
}

// targets lists the nodes to quantize, in graph order.
func (x *graph) targets() []*target {
	var ts []*target
	for _, n := range x.g.GetNode() {
		in := n.GetInput()
		if n.GetDomain() != "" || len(in) < 2 || x.inits[in[0]] != nil {
			continue
		}
		w := x.floatInit(in[1])
		if w == nil {
			continue
		}
		t := &target{node: n, in: in[0]}
		switch n.GetOpType() {
		case "Conv":
			if len(w.Shape) < 3 {
				continue
			}
		case "MatMul":
			if len(w.Shape) != 2 {
				continue // a batched weight has no one output-channel axis
			}
			t.wAxis = 1
		case "Gemm":
			if len(w.Shape) != 2 {
				continue
			}
			if attrInt(n, "transB", 0) == 0 {
				t.wAxis = 1
			}
		default:
			continue
		}
		if len(in) > 2 && in[2] != "" {
			b := x.floatInit(in[2])
			scaled := n.GetOpType() == "Gemm" && (attrFloat(n, "alpha", 1) != 1 || attrFloat(n, "beta", 1) != 1)
			t.bias = b != nil && len(b.Shape) == 1 && b.Shape[0] == w.Shape[t.wAxis] && !scaled
		}
		t.out = x.quantizedOutput(n)
		ts = append(ts, t)
	}
	return ts
}

// quantizedOutput is the tensor to quantize after n: its output, or the
// output of a Relu that is its only reader; "" for a graph output.
func (x *graph) quantizedOutput(n *onnxpb.NodeProto) string {
	out := n.GetOutput()[0]
	if r := x.readers[out]; len(r) == 1 && r[0].GetOpType() == "Relu" && !x.outputs[out] {
		out = r[0].GetOutput()[0]
	}
	if x.outputs[out] {
		return ""
	}
	return out
}

// tensors lists, in graph order and once each, the activations to
// quantize: each target's input and output, then the output of every
// residual Add whose two inputs are already among them.
func (x *graph) tensors(ts []*target) []string {
	var names []string
	for _, t := range ts {
		for _, s := range []string{t.in, t.out} {
			if s != "" && !slices.Contains(names, s) {
				names = append(names, s)
			}
		}
	}
	// An Add whose output is quantized becomes ONNX Runtime's QLinearAdd
	// (its Relu dropped as the clamp). Inside a ResNet that output is the
	// next Conv's input and already listed; the last block's feeds the
	// pooling, and without its own pair that block's Add, Relu and two
	// Transposes back to NCHW stayed in float.
	for _, n := range x.g.GetNode() {
		in := n.GetInput()
		if n.GetOpType() != "Add" || n.GetDomain() != "" || len(in) != 2 ||
			!slices.Contains(names, in[0]) || !slices.Contains(names, in[1]) {
			continue
		}
		if out := x.quantizedOutput(n); out != "" && !slices.Contains(names, out) {
			names = append(names, out)
		}
	}
	return names
}

// Tensors lists the activation tensors QDQ needs a Range for, in graph
// order; they are all tensors of m itself (BatchNormalization folding
// keeps the folded node's output name).
func Tensors(m *onnxpb.ModelProto) ([]string, error) {
	if m.GetGraph() == nil {
		return nil, errors.New("quantize: the model has no graph")
	}
	g := proto.Clone(m.GetGraph()).(*onnxpb.GraphProto)
	x := index(g)
	if err := x.foldBatchNorms(); err != nil {
		return nil, err
	}
	x = index(g)
	ts := x.targets()
	if len(ts) == 0 {
		return nil, ErrNothingToQuantize
	}
	return x.tensors(ts), nil
}

// QDQ returns a copy of m in QDQ form, quantized with the activation
// ranges given (one for each name Tensors lists). m is not modified.
func QDQ(m *onnxpb.ModelProto, ranges map[string]Range) (*onnxpb.ModelProto, error) {
	if m.GetGraph() == nil {
		return nil, errors.New("quantize: the model has no graph")
	}
	q := proto.Clone(m).(*onnxpb.ModelProto)
	g := q.GetGraph()
	if err := index(g).foldBatchNorms(); err != nil {
		return nil, err
	}
	x := index(g)
	ts := x.targets()
	if len(ts) == 0 {
		return nil, ErrNothingToQuantize
	}
	// Activations: a Q -> DQ pair right after each producer, every reader
	// rewired to the dequantized value.
	act := map[string]actParams{}
	after := map[string][]*onnxpb.NodeProto{} // producer output -> nodes to insert after it
	var head []*onnxpb.NodeProto              // nodes before the first original one
	for _, name := range x.tensors(ts) {
		r, ok := ranges[name]
		if !ok {
			return nil, fmt.Errorf("quantize: no calibration range for tensor %q", name)
		}
		p := uint8Params(r)
		p.scale, p.zero = x.fresh(name+"_scale"), x.fresh(name+"_zero_point")
		g.Initializer = append(g.Initializer, export.FloatTensor(p.scale, nil, []float32{p.s}), uint8Tensor(p.zero, []uint8{p.z}))
		qv, dqv := x.fresh(name+"_quantized"), x.fresh(name+"_dequantized")
		for _, rd := range x.readers[name] {
			for j, in := range rd.Input {
				if in == name {
					rd.Input[j] = dqv
				}
			}
		}
		p.dq = dqv
		act[name] = p
		pair := []*onnxpb.NodeProto{
			x.newNode("QuantizeLinear", []string{name, p.scale, p.zero}, qv),
			x.newNode("DequantizeLinear", []string{qv, p.scale, p.zero}, dqv),
		}
		if x.producedByNode(name) {
			after[name] = append(after[name], pair...)
		} else {
			head = append(head, pair...)
		}
	}
	// Weights (and biases): constant int8 (int32) initializers, each
	// dequantized once at the top of the graph.
	for _, t := range ts {
		in := t.node.Input
		w := x.floatInit(in[1])
		ws := symmetricScales(w, t.wAxis)
		wq := x.fresh(in[1] + "_quantized")
		wsName, wzName := x.fresh(in[1]+"_scale"), x.fresh(in[1]+"_zero_point")
		g.Initializer = append(g.Initializer, int8Tensor(wq, w.Shape, quantizeWeights(w, t.wAxis, ws)),
			export.FloatTensor(wsName, []int{len(ws)}, ws), int8Tensor(wzName, []int{len(ws)}, make([]int8, len(ws))))
		wdq := x.fresh(in[1] + "_dequantized")
		head = append(head, x.newNode("DequantizeLinear", []string{wq, wsName, wzName}, wdq, aInt("axis", int64(t.wAxis))))
		in[1] = wdq
		if t.bias {
			b := x.floatInit(in[2])
			sx := act[t.in].s
			bs := make([]float32, len(ws))
			bq := make([]int32, len(ws))
			for c, s := range ws {
				bs[c] = sx * s
				bq[c] = int32(max(min(math.RoundToEven(float64(b.Data.([]float32)[c]/bs[c])), math.MaxInt32), math.MinInt32))
			}
			bqName, bsName, bzName := x.fresh(in[2]+"_quantized"), x.fresh(in[2]+"_scale"), x.fresh(in[2]+"_zero_point")
			g.Initializer = append(g.Initializer, int32Tensor(bqName, bq), export.FloatTensor(bsName, []int{len(bs)}, bs), int32Tensor(bzName, make([]int32, len(bs))))
			bdq := x.fresh(in[2] + "_dequantized")
			head = append(head, x.newNode("DequantizeLinear", []string{bqName, bsName, bzName}, bdq, aInt("axis", 0)))
			in[2] = bdq
		}
	}
	nodes := slices.Clone(head)
	for _, n := range g.Node {
		nodes = append(nodes, n)
		for _, o := range n.GetOutput() {
			nodes = append(nodes, after[o]...)
		}
	}
	g.Node = nodes
	dropUnused(g)
	if err := bumpOpset(q); err != nil {
		return nil, err
	}
	return q, nil
}

// actParams are an activation's uint8 quantization and its names.
type actParams struct {
	s           float32
	z           uint8
	scale, zero string
	dq          string
}

// uint8Params quantizes r, widened to hold 0 so that 0 (padding, a Relu's
// floor) is exact.
func uint8Params(r Range) actParams {
	lo, hi := min(float64(r.Min), 0), max(float64(r.Max), 0)
	s := (hi - lo) / 255
	if s == 0 || math.IsNaN(s) || math.IsInf(s, 0) {
		return actParams{s: 1}
	}
	z := math.RoundToEven(-lo / s)
	return actParams{s: float32(s), z: uint8(max(min(z, 255), 0))}
}

// symmetricScales are max|w|/127 per channel along axis (1 for a channel
// of zeros).
func symmetricScales(w *onnxrt.Tensor, axis int) []float32 {
	ch, inner := w.Shape[axis], 1
	for _, d := range w.Shape[axis+1:] {
		inner *= d
	}
	amax := make([]float32, ch)
	for k, v := range w.Data.([]float32) {
		c := (k / inner) % ch
		amax[c] = max(amax[c], float32(math.Abs(float64(v))))
	}
	for c, a := range amax {
		amax[c] = a / 127
		if a == 0 {
			amax[c] = 1
		}
	}
	return amax
}

// quantizeWeights is round(w/scale) within [-127, 127], per channel.
func quantizeWeights(w *onnxrt.Tensor, axis int, scales []float32) []int8 {
	ch, inner := w.Shape[axis], 1
	for _, d := range w.Shape[axis+1:] {
		inner *= d
	}
	data := w.Data.([]float32)
	q := make([]int8, len(data))
	for k, v := range data {
		r := math.RoundToEven(float64(v / scales[(k/inner)%ch]))
		q[k] = int8(max(min(r, 127), -127))
	}
	return q
}

// producedByNode reports whether a node (not the graph's inputs) makes name.
func (x *graph) producedByNode(name string) bool {
	for _, n := range x.g.GetNode() {
		if slices.Contains(n.GetOutput(), name) {
			return true
		}
	}
	return false
}

func (x *graph) newNode(op string, in []string, out string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{OpType: proto.String(op), Name: proto.String(x.fresh(out)), Input: in, Output: []string{out}, Attribute: attrs}
}

// dropUnused removes the initializers no node reads any more (the float
// weights replaced by int8 ones).
func dropUnused(g *onnxpb.GraphProto) {
	read := map[string]bool{}
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			read[in] = true
		}
	}
	for _, o := range g.GetOutput() {
		read[o.GetName()] = true
	}
	g.Initializer = slices.DeleteFunc(g.Initializer, func(t *onnxpb.TensorProto) bool { return !read[t.GetName()] })
}

// changedAt13 are the ops whose meaning opset 13 changed (axes moved to an
// input, Softmax over one axis): a graph using them at opset 11 or 12
// cannot simply be relabelled 13.
var changedAt13 = []string{"Squeeze", "Unsqueeze", "ReduceSum", "Split", "Softmax", "LogSoftmax", "Hardmax"}

// bumpOpset raises the default-domain opset to minOpset where it is lower
// and that does not change what the graph's ops mean.
func bumpOpset(m *onnxpb.ModelProto) error {
	for _, o := range m.GetOpsetImport() {
		if o.GetDomain() != "" && o.GetDomain() != "ai.onnx" || o.GetVersion() >= minOpset {
			continue
		}
		if o.GetVersion() < 11 {
			return fmt.Errorf("quantize: opset %d is below 11; re-export the model at opset 13 or later", o.GetVersion())
		}
		for _, n := range m.GetGraph().GetNode() {
			if n.GetDomain() == "" && slices.Contains(changedAt13, n.GetOpType()) {
				return fmt.Errorf("quantize: per-channel DequantizeLinear needs opset 13, which changes %s (node %s) from the model's opset %d; re-export at opset 13 or later", n.GetOpType(), n.GetName(), o.GetVersion())
			}
		}
		o.Version = proto.Int64(minOpset)
	}
	return nil
}
