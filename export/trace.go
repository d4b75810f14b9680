package export

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"unsafe"

	"google.golang.org/protobuf/proto"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/export/onnxpb"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
)

// The format sslzoo writes. Opset 17 is the newest that Debian's onnx 1.12
// checker knows, and it has LayerNormalization; IR version 8 goes with it.
const (
	Opset     = 17
	IRVersion = 8
	// BatchAxis is the symbolic name of every input's and output's first axis.
	BatchAxis = "batch"
	Producer  = "sslzoo"
)

// traceBatches are the batch sizes of the two traced forwards. Any two
// distinct sizes work: dimensions equal in both are static, the others
// follow the batch.
var traceBatches = [2]int{2, 3}

// Input declares one graph input, whose first axis is the batch axis: a
// float32 tensor, or with Int an int64 tensor (token ids, attention masks).
type Input struct {
	Name string
	// Shape is the full input shape; Shape[0] (the batch) is ignored.
	Shape []int
	// Int makes the input int64. Forward still receives a Var, holding the
	// integers as float32 values (read them with IntsOf); the trace draws
	// them uniformly from [Low, High).
	Int       bool
	Low, High int
	// Uint8 makes the input uint8 (e.g. raw pixels); like Int, Forward
	// receives the values as float32, drawn from 0..255 in the trace.
	Uint8 bool
}

// IntsOf reads an int input's values (see Input.Int).
func IntsOf(v *autograd.Var) []int {
	out := make([]int, len(v.Value.Data))
	for i, x := range v.Value.Data {
		out[i] = int(x)
	}
	return out
}

// Spec says what to export.
type Spec struct {
	// Name is the graph's name (e.g. the architecture).
	Name    string
	Inputs  []Input
	Outputs []string
	// Forward runs the model in eval mode (call SetTraining(false) first) on
	// tp and returns one Var per output. It is called twice, on random
	// inputs of two batch sizes; it must record the same ops both times.
	Forward func(tp *autograd.Tape, inputs []*autograd.Var) []*autograd.Var
	// Module owns the parameters and buffers; nn.StateOf names them, and
	// buffers such as BatchNorm running statistics are matched by identity.
	// Without it, parameters keep whatever Name they carry and other
	// constants get generated names.
	Module nn.Module
	// Metadata goes to the model's metadata_props.
	Metadata map[string]string
	// ProducerVersion is stored as the model's producer_version.
	ProducerVersion string
	// Seed picks the random trace inputs (their values never reach the file).
	Seed uint64
}

// traced is one forward's record.
type traced struct {
	tp      *autograd.Tape
	inputs  []*autograd.Var
	outputs []*autograd.Var
}

func runForward(s *Spec, k int) (*traced, error) {
	batch := traceBatches[k]
	rng := rand.New(rand.NewPCG(s.Seed, uint64(k)))
	t := &traced{tp: autograd.NewTape()}
	for _, in := range s.Inputs {
		shape := append([]int{batch}, in.Shape[1:]...)
		v := tensor.New(shape...)
		for i := range v.Data {
			switch {
			case in.Int:
				v.Data[i] = float32(in.Low + rng.IntN(in.High-in.Low))
			case in.Uint8:
				v.Data[i] = float32(rng.IntN(256))
			default:
				v.Data[i] = float32(rng.NormFloat64())
			}
		}
		t.inputs = append(t.inputs, autograd.Const(v))
	}
	// Export needs no gradients: freezing the parameters spares the
	// backward closures and takes the inference path of code that branches
	// on RequiresGrad (e.g. BERT's padding-gradient stop).
	if s.Module != nil {
		for _, p := range nn.StateOf(s.Module).Params {
			if p.Var.RequiresGrad() {
				p.Var.SetRequiresGrad(false)
				defer p.Var.SetRequiresGrad(true)
			}
		}
	}
	err := autograd.Catch(func() { t.outputs = s.Forward(t.tp, t.inputs) })
	if err != nil {
		return nil, fmt.Errorf("forward at batch %d: %w", batch, err)
	}
	if len(t.outputs) != len(s.Outputs) {
		return nil, fmt.Errorf("forward returned %d outputs, spec names %d (%v)", len(t.outputs), len(s.Outputs), s.Outputs)
	}
	for i, o := range t.outputs {
		if o == nil {
			return nil, fmt.Errorf("forward returned nil for output %s", s.Outputs[i])
		}
	}
	return t, nil
}

func (s *Spec) validate() error {
	if s.Forward == nil {
		return errors.New("spec has no Forward")
	}
	if len(s.Inputs) == 0 || len(s.Outputs) == 0 {
		return fmt.Errorf("spec needs at least one input and one output (has %d and %d)", len(s.Inputs), len(s.Outputs))
	}
	seen := map[string]bool{}
	for _, in := range s.Inputs {
		if len(in.Shape) == 0 {
			return fmt.Errorf("input %q: shape must have a batch axis", in.Name)
		}
		if in.Int && in.Uint8 {
			return fmt.Errorf("input %q: Int and Uint8 both set", in.Name)
		}
		if in.Int && (in.High <= in.Low || in.High-in.Low < 2 || max(-in.Low, in.High) > 1<<24) {
			return fmt.Errorf("int input %q: range [%d, %d) must hold at least two values and stay within ±2^24", in.Name, in.Low, in.High)
		}
		for _, d := range in.Shape[1:] {
			if d <= 0 {
				return fmt.Errorf("input %q: shape %v has a non-positive dimension", in.Name, in.Shape)
			}
		}
	}
	for _, n := range append(inputNames(s), s.Outputs...) {
		if n == "" || seen[n] {
			return fmt.Errorf("input/output name %q is empty or used twice", n)
		}
		seen[n] = true
	}
	return nil
}

func inputNames(s *Spec) []string {
	n := make([]string, len(s.Inputs))
	for i, in := range s.Inputs {
		n[i] = in.Name
	}
	return n
}

// Trace runs the spec's forward and converts the record to an ONNX model.
func Trace(s Spec) (*onnxpb.ModelProto, error) {
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	var tr [2]*traced
	for k := range tr {
		t, err := runForward(&s, k)
		if err != nil {
			return nil, fmt.Errorf("export %s: %w", s.Name, err)
		}
		defer t.tp.Reset()
		tr[k] = t
	}
	g, err := convert(&s, tr[0], tr[1])
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", s.Name, err)
	}
	m := &onnxpb.ModelProto{
		IrVersion:       proto.Int64(IRVersion),
		ProducerName:    proto.String(Producer),
		ProducerVersion: proto.String(s.ProducerVersion),
		OpsetImport:     []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(Opset)}},
		Graph:           g,
	}
	keys := make([]string, 0, len(s.Metadata))
	for k := range s.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		m.MetadataProps = append(m.MetadataProps, &onnxpb.StringStringEntryProto{Key: proto.String(k), Value: proto.String(s.Metadata[k])})
	}
	return m, nil
}

// converter holds the state of one graph conversion.
type converter struct {
	b       *builder
	s       *Spec
	names   map[*autograd.Var]string
	buffers map[*tensor.Tensor]string
	bufData map[*float32]string
	batch   string // run-time batch size value, see batchSize
	traced  [2]*traced
	floatOf map[int]string // int input index -> its Cast to float32
}

// ctx is what an op mapping sees: the node in both traces, its input names,
// and the name its output must get.
type ctx struct {
	*converter
	n, twin *autograd.Node
	in      []string
	out     string
}

// opFunc emits the ONNX nodes for one engine op.
type opFunc func(c *ctx) error

func convert(s *Spec, a, bt *traced) (*onnxpb.GraphProto, error) {
	na, nb := a.tp.Nodes(), bt.tp.Nodes()
	if len(na) != len(nb) {
		return nil, fmt.Errorf("forward records %d ops at batch %d but %d at batch %d; export needs a batch-independent graph", len(na), traceBatches[0], len(nb), traceBatches[1])
	}
	index := make(map[*autograd.Node]int, len(na))
	for i, n := range na {
		if n.Op != nb[i].Op {
			return nil, fmt.Errorf("op %d is %s at batch %d but %s at batch %d", i, n.Op, traceBatches[0], nb[i].Op, traceBatches[1])
		}
		index[n] = i
	}
	// Only ops that reach an output are exported.
	needed := make([]bool, len(na))
	stack := slices.Clone(a.outputs)
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		n := v.Creator()
		if n == nil {
			continue
		}
		i, ok := index[n]
		if !ok {
			return nil, fmt.Errorf("an output was computed on another tape")
		}
		if needed[i] {
			continue
		}
		needed[i] = true
		stack = append(stack, n.Inputs...)
	}

	c := &converter{b: newBuilder(s.Name), s: s, names: map[*autograd.Var]string{},
		buffers: map[*tensor.Tensor]string{}, bufData: map[*float32]string{}, floatOf: map[int]string{}}
	if s.Module != nil {
		for _, buf := range nn.StateOf(s.Module).Buffers {
			if buf.T != nil {
				c.buffers[buf.T] = buf.Name
				if len(buf.T.Data) > 0 {
					c.bufData[unsafe.SliceData(buf.T.Data)] = buf.Name
				}
			}
		}
	}
	c.traced = [2]*traced{a, bt}
	for i, in := range s.Inputs {
		c.b.claim(in.Name)
		elem := onnxpb.TensorProto_FLOAT
		switch {
		case in.Int:
			elem = onnxpb.TensorProto_INT64
		case in.Uint8:
			elem = onnxpb.TensorProto_UINT8
		default:
			c.names[a.inputs[i]] = in.Name
		}
		c.b.g.Input = append(c.b.g.Input, valueInfo(in.Name, elem, append([]int{-1}, in.Shape[1:]...)))
	}
	for i, o := range a.outputs {
		if _, named := c.names[o]; !named && o.Creator() != nil {
			c.b.claim(s.Outputs[i])
			c.names[o] = s.Outputs[i]
		}
	}

	for i, n := range na {
		if !needed[i] {
			continue
		}
		if err := c.emit(n, nb[i]); err != nil {
			return nil, fmt.Errorf("op %d (%s): %w", i, n.Op, err)
		}
	}

	for i, o := range a.outputs {
		name := s.Outputs[i]
		src, err := c.valueName(o, bt.outputs[i])
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", name, err)
		}
		if src != name {
			c.b.claim(name)
			c.b.node("Identity", []string{src}, []string{name})
		}
		shape := slices.Clone(o.Value.Shape)
		ob := bt.outputs[i].Value.Shape
		if len(ob) != len(shape) {
			return nil, fmt.Errorf("output %s has shape %v at batch %d but %v at batch %d", name, shape, traceBatches[0], ob, traceBatches[1])
		}
		for d := range shape {
			if shape[d] != ob[d] {
				shape[d] = -1
			}
		}
		c.b.g.Output = append(c.b.g.Output, valueInfo(name, onnxpb.TensorProto_FLOAT, shape))
	}
	return c.b.g, nil
}

// emit converts one recorded op.
func (c *converter) emit(n, twin *autograd.Node) error {
	f, ok := ops[n.Op]
	if !ok {
		return fmt.Errorf("no ONNX mapping for engine op %s", n.Op)
	}
	if f == nil {
		return notExportable[n.Op]
	}
	if len(n.Outputs) != 1 {
		return fmt.Errorf("%d outputs; only single-output ops are mapped", len(n.Outputs))
	}
	if len(n.Inputs) != len(twin.Inputs) {
		return fmt.Errorf("%d inputs at batch %d but %d at batch %d", len(n.Inputs), traceBatches[0], len(twin.Inputs), traceBatches[1])
	}
	if err := sameAttrs(n, twin); err != nil {
		return err
	}
	x := &ctx{converter: c, n: n, twin: twin}
	for i, v := range n.Inputs {
		name, err := c.valueName(v, twin.Inputs[i])
		if err != nil {
			return fmt.Errorf("input %d: %w", i, err)
		}
		x.in = append(x.in, name)
	}
	out := n.Outputs[0]
	if name, ok := c.names[out]; ok {
		x.out = name
	} else {
		x.out = c.b.fresh(lower(n.Op))
		c.names[out] = x.out
	}
	return f(x)
}

// batchShaped lists, per op, the attributes that may legitimately follow
// the batch size; the op's mapping deals with them.
var batchShaped = map[string][]string{
	"Reshape":   {"shape", "out_shape"},
	"Slice":     {"end"},
	"Embedding": {"ids", "shape"},
}

// sameAttrs checks that an op's attributes do not depend on the batch.
func sameAttrs(n, twin *autograd.Node) error {
	for k, v := range n.Attrs {
		if slices.Contains(batchShaped[n.Op], k) {
			continue
		}
		if w := twin.Attrs[k]; !reflect.DeepEqual(v, w) {
			return fmt.Errorf("attribute %s is %v at batch %d but %v at batch %d; export needs a batch-independent graph", k, short(v), traceBatches[0], short(w), traceBatches[1])
		}
	}
	return nil
}

// short abbreviates long attribute values in messages.
func short(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

// valueName names an op input: an earlier op's output, a graph input, a
// parameter or buffer (initializer under its state_dict name), or another
// constant (which must be the same in both traces).
func (c *converter) valueName(v, twin *autograd.Var) (string, error) {
	if name, ok := c.names[v]; ok {
		return name, nil
	}
	if v.Creator() != nil {
		return "", fmt.Errorf("value produced by %s was not exported before use", v.Creator().Op)
	}
	for i, in := range c.traced[0].inputs {
		if v == in {
			// An int or uint8 input used as float data in an op.
			if c.floatOf[i] == "" {
				c.floatOf[i] = c.b.op1("Cast", []string{c.s.Inputs[i].Name}, aInt("to", int(onnxpb.TensorProto_FLOAT)))
			}
			c.names[v] = c.floatOf[i]
			return c.floatOf[i], nil
		}
	}
	shape := v.Value.Shape
	var name string
	switch {
	case v.Name != "":
		name = v.Name
	case c.buffers[v.Value] != "":
		name = c.buffers[v.Value]
	case len(v.Value.Data) > 0 && c.bufData[unsafe.SliceData(v.Value.Data)] != "":
		name = c.bufData[unsafe.SliceData(v.Value.Data)]
	}
	if name == "" {
		if name, ok := c.affineOfInput(v, twin); ok {
			c.names[v] = name
			return name, nil
		}
		if !slices.Equal(shape, twin.Value.Shape) {
			name, err := c.batchFill(v, twin)
			if err != nil {
				return "", err
			}
			c.names[v] = name
			return name, nil
		}
		if !slices.Equal(v.Value.Data, twin.Value.Data) {
			return "", fmt.Errorf("a constant of shape %v differs between the two traces; values computed outside the tape from the input cannot be exported", shape)
		}
		name = c.b.fresh("const")
	} else if !c.b.claim(name) {
		return "", fmt.Errorf("two different tensors are both named %q", name)
	}
	c.b.initializer(name, shape, v.Value.Data)
	c.names[v] = name
	return name, nil
}

// batchFill exports a constant whose shape follows the batch and whose
// elements are all one value (e.g. zeros that broadcast a class token over
// the batch) as ConstantOfShape over a shape taken from the first input at
// run time.
func (c *converter) batchFill(v, twin *autograd.Var) (string, error) {
	sa, sb := v.Value.Shape, twin.Value.Shape
	bad := fmt.Errorf("a constant has shape %v at batch %d but %v at batch %d; only constants that repeat one value along the batch axis can follow the batch",
		sa, traceBatches[0], sb, traceBatches[1])
	if len(sa) != len(sb) || len(v.Value.Data) == 0 {
		return "", bad
	}
	fillValue := v.Value.Data[0]
	for _, d := range [][]float32{v.Value.Data, twin.Value.Data} {
		for _, x := range d {
			if x != fillValue && !(x != x && fillValue != fillValue) {
				return "", bad
			}
		}
	}
	shape, err := c.batchShape(sa, sb)
	if err != nil {
		return "", bad
	}
	value := &onnxpb.AttributeProto{Name: proto.String("value"), Type: onnxpb.AttributeProto_TENSOR.Enum(),
		T: FloatTensor("", []int{1}, []float32{fillValue})}
	return c.b.op1("ConstantOfShape", []string{shape}, value), nil
}

// batchFillInt is batchFill for int64 indices given as Go ints.
func (c *converter) batchFillInt(a, b, sa, sb []int) (string, error) {
	bad := fmt.Errorf("%d values at batch %d but %d at batch %d that are neither an int input nor one repeated value", len(a), traceBatches[0], len(b), traceBatches[1])
	if len(a) == 0 || len(b) == 0 {
		return "", bad
	}
	for _, x := range append(slices.Clone(a), b...) {
		if x != a[0] {
			return "", bad
		}
	}
	shape, err := c.batchShape(sa, sb)
	if err != nil {
		return "", err
	}
	value := &onnxpb.AttributeProto{Name: proto.String("value"), Type: onnxpb.AttributeProto_TENSOR.Enum(),
		T: int64Tensor("", []int{1}, []int64{int64(a[0])})}
	return c.b.op1("ConstantOfShape", []string{shape}, value), nil
}

// batchShape builds, at run time, a shape that is sa with its
// batch-following dimensions replaced by the batch size.
func (c *converter) batchShape(sa, sb []int) (string, error) {
	if len(sa) != len(sb) {
		return "", fmt.Errorf("shape %v at batch %d but %v at batch %d", sa, traceBatches[0], sb, traceBatches[1])
	}
	parts := make([]string, len(sa))
	for i := range sa {
		switch {
		case sa[i] == sb[i]:
			parts[i] = c.b.constI64([]int{1}, int64(sa[i]))
		case sa[i] == traceBatches[0] && sb[i] == traceBatches[1]:
			parts[i] = c.batchSize()
		default:
			return "", fmt.Errorf("dimension %d of shape %v follows the batch but is not the batch size", i, sa)
		}
	}
	return c.b.op1("Concat", parts, aInt("axis", 0)), nil
}

// batchSize is a 1-D int64 tensor holding the run-time batch size (the
// first input's first dimension), computed once per graph.
func (c *converter) batchSize() string {
	if c.batch == "" {
		c.batch = c.b.op1("Shape", []string{c.s.Inputs[0].Name}, aInt("start", 0), aInt("end", 1))
	}
	return c.batch
}

// affineOfInput recognises a constant that the forward computed outside the
// tape as an exact affine function a*x+b of an int input x (e.g. an
// attention mask turned into additive 0/-max scores), in both traces, and
// exports it as that function of the input.
func (c *converter) affineOfInput(v, twin *autograd.Var) (string, bool) {
	for i, in := range c.s.Inputs {
		if !in.Int {
			continue
		}
		xa, xb := c.traced[0].inputs[i].Value, c.traced[1].inputs[i].Value
		if len(xa.Data) != len(v.Value.Data) || len(xb.Data) != len(twin.Value.Data) {
			continue
		}
		// Two positions with different x fix a and b.
		j := slices.IndexFunc(xa.Data, func(x float32) bool { return x != xa.Data[0] })
		if j < 0 {
			continue
		}
		ca := v.Value.Data
		a := float32((float64(ca[j]) - float64(ca[0])) / float64(xa.Data[j]-xa.Data[0]))
		b := float32(float64(ca[0]) - float64(a)*float64(xa.Data[0]))
		fits := func(x, y []float32) bool {
			for k := range x {
				if a*x[k]+b != y[k] {
					return false
				}
			}
			return true
		}
		if !fits(xa.Data, ca) || !fits(xb.Data, twin.Value.Data) {
			continue
		}
		target, err := reshapeTarget(xa.Shape, xb.Shape, v.Value.Shape, twin.Value.Shape, nil)
		if err != nil {
			continue
		}
		x := c.b.op1("Cast", []string{in.Name}, aInt("to", int(onnxpb.TensorProto_FLOAT)))
		x = c.b.op1("Reshape", []string{x, c.b.constI64([]int{len(target)}, target...)})
		if a != 1 {
			x = c.b.op1("Mul", []string{x, c.b.constF32(nil, a)})
		}
		if b != 0 {
			x = c.b.op1("Add", []string{x, c.b.constF32(nil, b)})
		}
		return x, true
	}
	return "", false
}

// intInput finds the int input whose traced values are ids in both traces.
func (c *converter) intInput(idsA, idsB []int) int {
	for i, in := range c.s.Inputs {
		if !in.Int {
			continue
		}
		if equalInts(c.traced[0].inputs[i].Value.Data, idsA) && equalInts(c.traced[1].inputs[i].Value.Data, idsB) {
			return i
		}
	}
	return -1
}

func equalInts(f []float32, ids []int) bool {
	if len(f) != len(ids) {
		return false
	}
	for k, x := range f {
		if int(x) != ids[k] {
			return false
		}
	}
	return true
}
