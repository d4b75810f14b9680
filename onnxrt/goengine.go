package onnxrt

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/export/onnxpb"
	"github.com/sslzoo/sslzoo/tensor"
)

// GoSession runs an ONNX model on sslzoo's own engine: each ONNX node is
// executed with the autograd kernels (in NoGrad mode), so no ONNX Runtime is
// needed. It supports the ONNX ops sslzoo exports plus the common shape and
// element-wise ops around them, float32 data and int64 shape/index tensors;
// OpenGo rejects anything else with a message that lists what is missing.
//
// Loading compiles the graph into a plan (see plan.go). A GoSession is safe
// for concurrent use: every Run takes its own tape, and tapes (with the
// buffers they pool) are kept between Runs so a steady load allocates
// nothing new.
type GoSession struct {
	name  string
	info  *ModelInfo
	opset int64
	inits map[string]*gval
	nodes []*gnode
	plan  *plan
	tapes sync.Pool                 // of *autograd.Tape
	prof  atomic.Pointer[opProfile] // nil unless EnableProfile
}

// gval is a value flowing through the graph: float32 data in f, or integer
// data (shapes, indices, quantized values) in i. Integers are held as int64
// whatever their ONNX type; int32, int8 and uint8 values are typed at load
// time (inferTypes), their producers' outputs wrapped to their width
// (gnode.narrowOut) and converted back only where they leave the graph. nhwc marks a 4-D float value whose data is
// laid out NHWC while its shape stays NCHW (see layout.go).
type gval struct {
	f    *tensor.Tensor
	i    *itensor
	nhwc bool
}

type itensor struct {
	shape []int
	data  []int64
}

func (v *gval) shape() []int {
	if v.f != nil {
		return v.f.Shape
	}
	return v.i.shape
}

type gnode struct {
	op    string
	name  string
	in    []string
	out   []string
	attrs map[string]*onnxpb.AttributeProto
	impl  *goOp
	relu  bool // a fused Relu runs on the output (see fuse.go)
	// narrowOut lists the outputs typed int32, int8 or uint8, which the
	// plan wraps to their width after the node runs (integer arithmetic
	// runs on int64).
	narrowOut []typedOut
	sum       bool // a Conv whose fourth input is added to its output (fuseResidual)
}

// gctx is the per-Run state an op sees.
type gctx struct {
	tp      *autograd.Tape
	opset   int64
	current *gnode // the node running, for error messages
	// dying[j]: the running step is the last reader of input j's buffer,
	// which the tape owns, so the op may write its output into it.
	dying []bool
	prof  *opProfile // nil unless the session profiles
}

type goOp struct {
	// check validates a node's static attributes at load time (nil: none).
	check func(n *gnode, opset int64) error
	run   func(c *gctx, n *gnode, in []*gval) ([]*gval, error)
	// nhwc, when set, says whether run takes these inputs as they are
	// although some are NHWC (it then sets its outputs' layout itself);
	// otherwise the plan hands it NCHW copies.
	nhwc func(in []*gval) bool
	// types, when set, gives the output types in place of inferTypes' rules.
	types func(n *gnode, in []DType) ([]DType, error)
}

// typedOut is output j of a node and its ONNX element type.
type typedOut struct {
	j int
	t DType
}

// OpenGo loads an ONNX file for the Go engine.
func OpenGo(path string) (*GoSession, error) {
	m, err := onnxpb.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("open model: %w", err)
	}
	return newGoSession(path, m)
}

// OpenGoModel loads an in-memory ONNX model for the Go engine.
func OpenGoModel(name string, m *onnxpb.ModelProto) (*GoSession, error) {
	return newGoSession(name, m)
}

func newGoSession(name string, m *onnxpb.ModelProto) (*GoSession, error) {
	if m.GetGraph() == nil {
		return nil, fmt.Errorf("model %s: not an ONNX model (no graph)", name)
	}
	info := modelInfo(m)
	s := &GoSession{name: name, info: info, opset: info.Opset, inits: map[string]*gval{}}
	if s.opset == 0 {
		return nil, fmt.Errorf("model %s imports no default-domain opset", name)
	}
	for _, v := range info.Inputs {
		if v.Kind != "tensor" || !carried(v.DType) {
			return nil, fmt.Errorf("model %s: input %v: the Go engine takes float32, int64, int32, int8 and uint8 tensors only", name, v)
		}
	}
	for _, v := range info.Outputs {
		if v.Kind != "tensor" || !carried(v.DType) {
			return nil, fmt.Errorf("model %s: output %v: the Go engine returns float32, int64, int32, int8 and uint8 tensors only", name, v)
		}
	}
	g := m.GetGraph()
	initTypes := map[string]DType{}
	for _, tp := range g.GetInitializer() {
		v, err := valueFromProto(tp)
		if err != nil {
			return nil, fmt.Errorf("model %s: initializer: %w", name, err)
		}
		s.inits[tp.GetName()] = v
		initTypes[tp.GetName()] = DType(tp.GetDataType())
	}
	if len(g.GetSparseInitializer()) > 0 {
		return nil, fmt.Errorf("model %s: sparse initializers are not supported by the Go engine", name)
	}
	missing := map[string][]string{} // op -> the nodes that use it
	var problems []string
	for i, np := range g.GetNode() {
		n := &gnode{op: np.GetOpType(), name: np.GetName(), in: np.GetInput(), out: np.GetOutput(), attrs: map[string]*onnxpb.AttributeProto{}}
		if n.name == "" {
			n.name = fmt.Sprintf("#%d", i)
		} else {
			n.name = shownName(n.name)
		}
		for _, a := range np.GetAttribute() {
			n.attrs[a.GetName()] = a
		}
		if d := np.GetDomain(); d != "" && d != "ai.onnx" {
			op := shownName(d + "." + n.op)
			missing[op] = append(missing[op], n.name)
			continue
		}
		op, ok := goOps[n.op]
		if !ok {
			missing[shownName(n.op)] = append(missing[shownName(n.op)], n.name)
			continue
		}
		n.impl = op
		if countNamed(n.out) == 0 {
			// Every ONNX op has a required first output; fusions rely on it.
			problems = append(problems, fmt.Sprintf("%s node %s has no outputs", n.op, n.name))
		} else if op.check != nil {
			if err := op.check(n, s.opset); err != nil {
				problems = append(problems, fmt.Sprintf("%s node %s: %v", n.op, n.name, err))
			}
		}
		s.nodes = append(s.nodes, n)
	}
	if len(missing) == 0 {
		// Element types, so that unsupported ones are refused now rather
		// than halfway through a Run.
		types := map[string]DType{}
		for _, v := range info.Inputs {
			types[v.Name] = v.DType
		}
		maps.Copy(types, initTypes)
		// refused: outputs of nodes refused here, whose readers are not
		// reported again (one int32 Constant refused used to cascade into
		// a "not defined" for every node downstream).
		refused := map[string]bool{}
		for _, n := range s.nodes {
			in := make([]DType, len(n.in))
			ok := true
			for j, name := range n.in {
				if name == "" {
					continue
				}
				t, defined := types[name]
				switch {
				case refused[name]:
					ok = false
				case !defined:
					problems = append(problems, fmt.Sprintf("%s node %s: input %s is not defined before use", n.op, n.name, strconv.Quote(name)))
					ok = false
				}
				in[j] = t
			}
			if ok {
				out, err := inferTypes(n, in)
				if err == nil && len(out) < countNamed(n.out) {
					err = fmt.Errorf("the node names %d outputs; the Go engine's %s gives %d", countNamed(n.out), n.op, len(out))
				}
				if err == nil {
					for j, name := range n.out[:min(len(out), len(n.out))] {
						types[name] = out[j]
						if narrowInt(out[j]) && n.op != "Cast" { // Cast wraps itself
							n.narrowOut = append(n.narrowOut, typedOut{j, out[j]})
						}
					}
					continue
				}
				problems = append(problems, fmt.Sprintf("%s node %s: %v", n.op, n.name, err))
			}
			for _, name := range n.out {
				refused[name] = true
			}
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("model %s: ops not supported by the Go engine: %s; ONNX Runtime runs them (--engine ort)", name, describeMissing(missing))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("model %s: %s", name, describeProblems(problems))
	}
	p, err := compile(s.nodes, s.inits, info, s.opset)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	s.plan, s.inits, s.nodes = p, nil, nil
	return s, nil
}

// describeMissing lists each missing op with the first nodes that use it:
// "Resize (nodes up1, up2 and 3 more)".
// describeProblems joins the first few reasons a model is refused, and
// counts the rest: one line, however broken the graph.
func describeProblems(problems []string) string {
	const shown = 3
	if len(problems) <= shown {
		return strings.Join(problems, "; ")
	}
	return fmt.Sprintf("%s; and %d more", strings.Join(problems[:shown], "; "), len(problems)-shown)
}

func describeMissing(missing map[string][]string) string {
	ops := slices.Sorted(maps.Keys(missing))
	parts := make([]string, len(ops))
	for i, op := range ops {
		nodes := missing[op]
		word := "node"
		if len(nodes) > 1 {
			word = "nodes"
		}
		list := strings.Join(nodes[:min(len(nodes), 3)], ", ")
		if len(nodes) > 3 {
			list += fmt.Sprintf(" and %d more", len(nodes)-3)
		}
		parts[i] = fmt.Sprintf("%s (%s %s)", op, word, list)
	}
	return strings.Join(parts, ", ")
}

func valueFromProto(tp *onnxpb.TensorProto) (*gval, error) {
	t, err := TensorFromProto(tp)
	if err != nil {
		return nil, err
	}
	return valueFromTensor(t, fmt.Sprintf("tensor %q", tp.GetName()))
}

func valueFromTensor(t *Tensor, what string) (*gval, error) {
	switch d := t.Data.(type) {
	case []float32:
		return &gval{f: &tensor.Tensor{Shape: slices.Clone(t.Shape), Data: d}}, nil
	case []int64:
		return &gval{i: &itensor{shape: slices.Clone(t.Shape), data: d}}, nil
	case []uint8:
		// Raw pixels, quantized values: held as int64, which every uint8
		// fits exactly; the graph's Cast to float32 then reads them as any
		// int input.
		return &gval{i: &itensor{shape: slices.Clone(t.Shape), data: widen(d)}}, nil
	case []int8:
		return &gval{i: &itensor{shape: slices.Clone(t.Shape), data: widen(d)}}, nil
	case []int32:
		return &gval{i: &itensor{shape: slices.Clone(t.Shape), data: widen(d)}}, nil
	}
	return nil, fmt.Errorf("%s is %v; the Go engine handles float32, int64, int32, int8 and uint8", what, t.DType)
}

func widen[T uint8 | int8 | int32](d []T) []int64 {
	w := make([]int64, len(d))
	for i, v := range d {
		w[i] = int64(v)
	}
	return w
}

// carried reports whether the Go engine holds values of type t. Narrow
// integers are stored as int64 but typed as themselves, so that they wrap
// and leave the graph as what they are.
func carried(t DType) bool { return t == Float32 || t == Int64 || narrowInt(t) }

// narrowInt reports whether t is an integer type narrower than the int64 the
// engine computes in.
func narrowInt(t DType) bool { return t == Int32 || t == Int8 || t == Uint8 }

// wrapNarrow wraps the node's narrow-typed outputs in res (int32, int8,
// uint8) to their width.
func (n *gnode) wrapNarrow(res []*gval) {
	for _, o := range n.narrowOut {
		if o.j < len(res) && res[o.j] != nil && res[o.j].i != nil {
			res[o.j] = wrappedTo(res[o.j], o.t)
		}
	}
}

// outType is the narrow type inferred for output j, 0 if it is not narrow.
func (n *gnode) outType(j int) DType {
	for _, o := range n.narrowOut {
		if o.j == j {
			return o.t
		}
	}
	return 0
}

// wrapped is v with its values reduced to int32's range, as int32
// arithmetic would have wrapped them.
func wrapped(v *gval) *gval { return wrappedTo(v, Int32) }

// wrappedTo is v with its values reduced to t's range (int32, int8 or
// uint8): v itself when all are in range (it may share data with a
// constant, so it is never written to), else a copy.
func wrappedTo(v *gval, t DType) *gval {
	wrap := func(x int64) int64 { return int64(int32(x)) }
	switch t {
	case Int8:
		wrap = func(x int64) int64 { return int64(int8(x)) }
	case Uint8:
		wrap = func(x int64) int64 { return int64(uint8(x)) }
	}
	for i, x := range v.i.data {
		if x != wrap(x) {
			d := slices.Clone(v.i.data)
			for j := i; j < len(d); j++ {
				d[j] = wrap(d[j])
			}
			return &gval{i: &itensor{shape: v.i.shape, data: d}}
		}
	}
	return v
}

// Name is the model's file name.
func (s *GoSession) Name() string { return s.name }

// Inputs lists the model's inputs in the order Run expects them.
func (s *GoSession) Inputs() []ValueInfo { return s.info.Inputs }

// Outputs lists the model's outputs in the order Run returns them.
func (s *GoSession) Outputs() []ValueInfo { return s.info.Outputs }

// Metadata is the model's metadata_props.
func (s *GoSession) Metadata() map[string]string { return s.info.Metadata }

// Close releases nothing: the Go engine holds only Go memory.
func (s *GoSession) Close() error { return nil }

// Run executes the graph on one tensor per input (float32 or int64, in
// Inputs order) and returns every output, copied out of the engine.
func (s *GoSession) Run(inputs ...*Tensor) (out []*Tensor, err error) {
	if len(inputs) != len(s.info.Inputs) {
		return nil, fmt.Errorf("model %s takes %d inputs (%v), got %d", s.name, len(s.info.Inputs), s.info.Inputs, len(inputs))
	}
	if s.plan.convs > 1 {
		// A chain of OpenMP convolutions (see tensor.PinThread). A pass
		// that is mostly crew work (ViT-tiny: one Conv, then GEMMs and
		// element-wise kernels) gains nothing from it and stays free.
		defer tensor.PinThread()()
	}
	vals := slices.Clone(s.plan.consts)
	for i, t := range inputs {
		vi := s.info.Inputs[i]
		if err := checkInput(vi, t); err != nil {
			return nil, fmt.Errorf("model %s: input %s: %w", s.name, shownName(vi.Name), err)
		}
		v, err := valueFromTensor(t, "input "+vi.Name)
		if err != nil {
			return nil, err
		}
		vals[s.plan.inputs[i]] = v
	}
	tp, _ := s.tapes.Get().(*autograd.Tape)
	if tp == nil {
		tp = autograd.NewTape()
	}
	defer func() {
		tp.Reset()
		s.tapes.Put(tp)
	}()
	c := &gctx{tp: tp, opset: s.opset, prof: s.prof.Load()}
	var runErr error
	err = autograd.Catch(func() {
		tp.NoGrad(func() { runErr = s.plan.run(c, vals) })
	})
	if err == nil {
		err = runErr
	}
	if err != nil {
		if n := c.current; n != nil {
			return nil, fmt.Errorf("model %s: %s node %s: %w", s.name, n.op, n.name, err)
		}
		return nil, fmt.Errorf("model %s: %w", s.name, err)
	}
	out = make([]*Tensor, len(s.info.Outputs))
	for i, vi := range s.info.Outputs {
		v := vals[s.plan.outputs[i]]
		if v == nil {
			return nil, fmt.Errorf("model %s: output %s was never computed", s.name, shownName(vi.Name))
		}
		// Copy: the data may live in the tape's pool, recycled on Reset.
		switch {
		case v.f != nil:
			out[i] = NewTensor(v.f.Shape, slices.Clone(v.f.Data))
		case vi.DType == Int32:
			out[i] = NewTensor(v.i.shape, narrowed[int32](v.i.data))
		case vi.DType == Int8:
			out[i] = NewTensor(v.i.shape, narrowed[int8](v.i.data))
		case vi.DType == Uint8:
			out[i] = NewTensor(v.i.shape, narrowed[uint8](v.i.data))
		default:
			out[i] = NewTensor(v.i.shape, slices.Clone(v.i.data))
		}
		if out[i].Shape == nil {
			out[i].Shape = []int{}
		}
	}
	return out, nil
}

// narrowed converts int64 data back to the narrow type it stands for.
func narrowed[T int32 | int8 | uint8](d []int64) []T {
	out := make([]T, len(d))
	for i, x := range d {
		out[i] = T(x)
	}
	return out
}
