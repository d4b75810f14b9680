package export

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/sslzoo/sslzoo/export/onnxpb"
)

// ops maps each engine op (autograd.Node.Op) to its ONNX emitter. A nil
// entry is an op that has no place in an exported inference graph; its
// reason is in notExportable.
var ops map[string]opFunc

// notExportable explains the ops that are deliberately not mapped.
var notExportable = map[string]error{
	"Dropout":          errors.New("Dropout in training mode; call the model's SetTraining(false) before export (eval-mode dropout records nothing)"),
	"CrossEntropy":     errors.New("loss ops are not part of an exported model; return the embedding or logits"),
	"CrossEntropySoft": errors.New("loss ops are not part of an exported model; return the embedding or logits"),
	"TakeAlongAxis":    errors.New("TakeAlongAxis (random patch selection) is a training-time op; export the eval path"),
}

func init() {
	ops = map[string]opFunc{
		"Conv2d":        conv2d,
		"BatchNorm":     batchNorm,
		"MaxPool2d":     pool("MaxPool"),
		"AvgPool2d":     pool("AveragePool"),
		"GlobalAvgPool": globalAvgPool,
		"Linear":        linear,
		"MatMul":        matMul,
		"Add":           direct("Add"),
		"Sub":           direct("Sub"),
		"Mul":           direct("Mul"),
		"Div":           direct("Div"),
		"ReLU":          direct("Relu"),
		"Sigmoid":       direct("Sigmoid"),
		"Tanh":          direct("Tanh"),
		"Neg":           direct("Neg"),
		"Exp":           direct("Exp"),
		"Log":           direct("Log"),
		"Sqrt":          direct("Sqrt"),
		"Abs":           direct("Abs"),
		"Detach":        direct("Identity"),
		"Square":        square,
		"AddScalar":     scalarOp("Add", "value"),
		"MulScalar":     scalarOp("Mul", "value"),
		"PowScalar":     scalarOp("Pow", "exponent"),
		"GELU":          gelu,
		"Sum":           reduce("ReduceSum"),
		"Mean":          reduce("ReduceMean"),
		"SumAll":        reduce("ReduceSum"),
		"MeanAll":       reduce("ReduceMean"),
		"Max":           reduceMax,
		"Softmax":       softmax("Softmax"),
		"LogSoftmax":    softmax("LogSoftmax"),
		"LayerNorm":     layerNorm,
		"L2Normalize":   l2Normalize,
		"Reshape":       reshape,
		"Transpose":     transpose,
		"Concat":        concat,
		"Slice":         slice,
		"Gather":        gather,
		"Embedding":     embedding,
	}
	for op := range notExportable {
		ops[op] = nil
	}
}

// attr reads an op attribute of type T, failing clearly when the engine
// recorded something else (an engine/exporter version mismatch).
func attr[T any](c *ctx, name string) (T, error) {
	v, ok := c.n.Attrs[name].(T)
	if !ok {
		var zero T
		return zero, fmt.Errorf("attribute %q is %T (%v), want %T", name, c.n.Attrs[name], c.n.Attrs[name], zero)
	}
	return v, nil
}

// emitOut writes the op's final node.
func (c *ctx) emitOut(op string, in []string, attrs ...*onnxpb.AttributeProto) error {
	c.b.node(op, in, []string{c.out}, attrs...)
	return nil
}

func (c *ctx) inShape(i int) []int { return c.n.Inputs[i].Value.Shape }

func direct(op string) opFunc {
	return func(c *ctx) error { return c.emitOut(op, c.in) }
}

func square(c *ctx) error { return c.emitOut("Mul", []string{c.in[0], c.in[0]}) }

func scalarOp(op, key string) opFunc {
	return func(c *ctx) error {
		v, err := attr[float32](c, key)
		if err != nil {
			return err
		}
		return c.emitOut(op, []string{c.in[0], c.b.constF32(nil, v)})
	}
}

// gelu is the exact GELU, 0.5·x·(1+erf(x/√2)): opset 17 has no Gelu op.
// ONNX Runtime fuses this pattern back into one kernel.
func gelu(c *ctx) error {
	if a, ok := c.n.Attrs["approximate"]; ok && a != "none" {
		return fmt.Errorf("GELU approximation %v is not mapped", a)
	}
	x := c.in[0]
	t := c.b.op1("Div", []string{x, c.b.constF32(nil, float32(math.Sqrt2))})
	t = c.b.op1("Erf", []string{t})
	t = c.b.op1("Add", []string{t, c.b.constF32(nil, 1)})
	t = c.b.op1("Mul", []string{x, t})
	return c.emitOut("Mul", []string{t, c.b.constF32(nil, 0.5)})
}

func conv2d(c *ctx) error {
	var attrs []*onnxpb.AttributeProto
	for _, k := range []string{"kernel_shape", "strides", "pads", "dilations"} {
		v, err := attr[[]int](c, k)
		if err != nil {
			return err
		}
		attrs = append(attrs, aInts(k, v))
	}
	g, err := attr[int](c, "group")
	if err != nil {
		return err
	}
	return c.emitOut("Conv", c.in, append(attrs, aInt("group", g))...)
}

// batchNorm exports eval-mode BatchNorm as BatchNormalization over the
// running statistics; a missing affine becomes scale 1 and shift 0.
func batchNorm(c *ctx) error {
	training, err := attr[bool](c, "training_mode")
	if err != nil {
		return err
	}
	if training {
		return errors.New("BatchNorm used batch statistics (training mode, or no running statistics); call SetTraining(false) before export")
	}
	roles, err := attr[[]string](c, "inputs")
	if err != nil {
		return err
	}
	eps, err := attr[float32](c, "epsilon")
	if err != nil {
		return err
	}
	momentum, err := attr[float32](c, "momentum")
	if err != nil {
		return err
	}
	byRole := map[string]string{}
	for i, r := range roles {
		byRole[r] = c.in[i]
	}
	if byRole["mean"] == "" || byRole["var"] == "" {
		return errors.New("BatchNorm without running statistics cannot run in eval mode")
	}
	ch := c.inShape(0)[1]
	if byRole["scale"] == "" {
		byRole["scale"] = c.b.constF32([]int{ch}, fill(ch, 1)...)
	}
	if byRole["B"] == "" {
		byRole["B"] = c.b.constF32([]int{ch}, fill(ch, 0)...)
	}
	in := []string{byRole["X"], byRole["scale"], byRole["B"], byRole["mean"], byRole["var"]}
	// ONNX's momentum weighs the old running value (1 - PyTorch's).
	return c.emitOut("BatchNormalization", in, aFloat("epsilon", eps), aFloat("momentum", 1-momentum))
}

func fill(n int, v float32) []float32 {
	d := make([]float32, n)
	for i := range d {
		d[i] = v
	}
	return d
}

func pool(op string) opFunc {
	return func(c *ctx) error {
		var attrs []*onnxpb.AttributeProto
		for _, k := range []string{"kernel_shape", "strides", "pads"} {
			v, err := attr[[]int](c, k)
			if err != nil {
				return err
			}
			attrs = append(attrs, aInts(k, v))
		}
		ceil, err := attr[int](c, "ceil_mode")
		if err != nil {
			return err
		}
		attrs = append(attrs, aInt("ceil_mode", ceil))
		if op == "AveragePool" {
			cip, err := attr[int](c, "count_include_pad")
			if err != nil {
				return err
			}
			attrs = append(attrs, aInt("count_include_pad", cip))
		}
		return c.emitOut(op, c.in, attrs...)
	}
}

// globalAvgPool is GlobalAveragePool then Flatten to [N, C].
func globalAvgPool(c *ctx) error {
	t := c.b.op1("GlobalAveragePool", c.in)
	return c.emitOut("Flatten", []string{t}, aInt("axis", 1))
}

// linear is Gemm for 2-D inputs, else MatMul with the transposed weight
// (ONNX Runtime folds the Transpose of an initializer at load time).
func linear(c *ctx) error {
	if len(c.inShape(0)) == 2 {
		return c.emitOut("Gemm", c.in, aInt("transB", 1))
	}
	wt := c.b.op1("Transpose", []string{c.in[1]}, aInts("perm", []int{1, 0}))
	if len(c.in) == 2 {
		return c.emitOut("MatMul", []string{c.in[0], wt})
	}
	y := c.b.op1("MatMul", []string{c.in[0], wt})
	return c.emitOut("Add", []string{y, c.in[2]})
}

// swapLast transposes the last two axes of an input of the given rank.
func (c *ctx) swapLast(name string, rank int) string {
	perm := make([]int, rank)
	for i := range perm {
		perm[i] = i
	}
	perm[rank-2], perm[rank-1] = rank-1, rank-2
	return c.b.op1("Transpose", []string{name}, aInts("perm", perm))
}

func matMul(c *ctx) error {
	a, b := c.in[0], c.in[1]
	ta, _ := c.n.Attrs["transA"].(bool)
	tb, _ := c.n.Attrs["transB"].(bool)
	if ta {
		a = c.swapLast(a, len(c.inShape(0)))
	}
	if tb {
		b = c.swapLast(b, len(c.inShape(1)))
	}
	return c.emitOut("MatMul", []string{a, b})
}

// reduce maps Sum/Mean (over axes) and SumAll/MeanAll (over everything).
// In opset 17 ReduceSum takes its axes as an input, ReduceMean as an
// attribute.
func reduce(op string) opFunc {
	return func(c *ctx) error {
		axes, _ := c.n.Attrs["axes"].([]int)
		keep := false
		if k, ok := c.n.Attrs["keepdims"]; ok {
			if keep, ok = k.(bool); !ok {
				return fmt.Errorf("attribute keepdims is %T", k)
			}
		}
		attrs := []*onnxpb.AttributeProto{aInt("keepdims", b2i(keep))}
		in := []string{c.in[0]}
		if len(axes) > 0 {
			if op == "ReduceSum" {
				in = append(in, c.b.constI64([]int{len(axes)}, int64s(axes)...))
			} else {
				attrs = append(attrs, aInts("axes", axes))
			}
		}
		return c.emitOut(op, in, attrs...)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func int64s(v []int) []int64 {
	out := make([]int64, len(v))
	for i, x := range v {
		out[i] = int64(x)
	}
	return out
}

func reduceMax(c *ctx) error {
	axis, err := attr[int](c, "axis")
	if err != nil {
		return err
	}
	keep, err := attr[bool](c, "keepdims")
	if err != nil {
		return err
	}
	return c.emitOut("ReduceMax", c.in, aInts("axes", []int{axis}), aInt("keepdims", b2i(keep)))
}

func softmax(op string) opFunc {
	return func(c *ctx) error {
		axis, err := attr[int](c, "axis")
		if err != nil {
			return err
		}
		return c.emitOut(op, c.in, aInt("axis", axis))
	}
}

func layerNorm(c *ctx) error {
	eps, err := attr[float32](c, "epsilon")
	if err != nil {
		return err
	}
	hasW, _ := c.n.Attrs["has_weight"].(bool)
	hasB, _ := c.n.Attrs["has_bias"].(bool)
	shape := c.inShape(0)
	d := shape[len(shape)-1]
	in := []string{c.in[0]}
	next := 1
	if hasW {
		in = append(in, c.in[next])
		next++
	} else {
		in = append(in, c.b.constF32([]int{d}, fill(d, 1)...))
	}
	if hasB {
		in = append(in, c.in[next])
	}
	return c.emitOut("LayerNormalization", in, aInt("axis", -1), aFloat("epsilon", eps))
}

// l2Normalize is x / max(‖x‖₂, eps) along axis.
func l2Normalize(c *ctx) error {
	axis, err := attr[int](c, "axis")
	if err != nil {
		return err
	}
	eps, err := attr[float32](c, "eps")
	if err != nil {
		return err
	}
	n := c.b.op1("ReduceL2", c.in, aInts("axes", []int{axis}), aInt("keepdims", 1))
	n = c.b.op1("Max", []string{n, c.b.constF32(nil, eps)})
	return c.emitOut("Div", []string{c.in[0], n})
}

// reshapeTarget is a Reshape target that holds in both traces (input
// shapes inA/inB, outputs outA/outB): static dimensions as numbers, a
// batch-following dimension as 0 (copy the input's) when it sits where the
// input's does, else as -1. want is the caller's requested shape (its -1
// is kept), or nil.
func reshapeTarget(inA, inB, outA, outB, want []int) ([]int64, error) {
	if len(outA) != len(outB) || (want != nil && len(want) != len(outA)) {
		return nil, fmt.Errorf("reshape to %v has rank %d at batch %d but %v at batch %d", want, len(outA), traceBatches[0], outB, traceBatches[1])
	}
	target := make([]int64, len(outA))
	free := 0
	for i := range outA {
		switch {
		case want != nil && want[i] == -1:
			target[i] = -1
		case outA[i] == outB[i]:
			target[i] = int64(outA[i])
			if outA[i] == 0 {
				return nil, errors.New("reshape to an empty dimension is not exported")
			}
			continue
		case i < len(inA) && i < len(inB) && inA[i] == outA[i] && inB[i] == outB[i]:
			target[i] = 0
			continue
		default:
			target[i] = -1
		}
		free++
	}
	if free > 1 {
		return nil, fmt.Errorf("reshape %v -> %v has %d dimensions that follow the batch; ONNX Reshape allows one -1", inA, outA, free)
	}
	return target, nil
}

// reshape exports Reshape with a batch-independent target.
func reshape(c *ctx) error {
	want, err := attr[[]int](c, "shape")
	if err != nil {
		return err
	}
	target, err := reshapeTarget(c.inShape(0), c.twin.Inputs[0].Value.Shape, c.n.Outputs[0].Value.Shape, c.twin.Outputs[0].Value.Shape, want)
	if err != nil {
		return err
	}
	return c.emitOut("Reshape", []string{c.in[0], c.b.constI64([]int{len(target)}, target...)})
}

func transpose(c *ctx) error {
	perm, err := attr[[]int](c, "perm")
	if err != nil {
		return err
	}
	return c.emitOut("Transpose", c.in, aInts("perm", perm))
}

func concat(c *ctx) error {
	axis, err := attr[int](c, "axis")
	if err != nil {
		return err
	}
	return c.emitOut("Concat", c.in, aInt("axis", axis))
}

// slice keeps start and end static; an end at the full length of an axis
// that follows the batch becomes "to the end".
func slice(c *ctx) error {
	axis, err := attr[int](c, "axis")
	if err != nil {
		return err
	}
	start, err := attr[int](c, "start")
	if err != nil {
		return err
	}
	endA, err := attr[int](c, "end")
	if err != nil {
		return err
	}
	endB, _ := c.twin.Attrs["end"].(int)
	end := int64(endA)
	if endA != endB {
		if endA != c.inShape(0)[axis] || endB != c.twin.Inputs[0].Value.Shape[axis] {
			return fmt.Errorf("slice end %d on axis %d depends on the batch size", endA, axis)
		}
		end = math.MaxInt64
	}
	return c.emitOut("Slice", []string{c.in[0], c.b.constI64([]int{1}, int64(start)), c.b.constI64([]int{1}, end), c.b.constI64([]int{1}, int64(axis))})
}

func gather(c *ctx) error {
	axis, err := attr[int](c, "axis")
	if err != nil {
		return err
	}
	idx, err := attr[[]int](c, "indices")
	if err != nil {
		return err
	}
	return c.emitOut("Gather", []string{c.in[0], c.b.constI64([]int{len(idx)}, int64s(idx)...)}, aInt("axis", axis))
}

// embedding is a Gather from the table. Its ids are an int graph input
// (matched by value in both traces), the same constants in both traces
// (e.g. position ids), or one repeated value whose shape follows the batch
// (e.g. all-zero token types).
func embedding(c *ctx) error {
	ids, err := attr[[]int](c, "ids")
	if err != nil {
		return err
	}
	shape, err := attr[[]int](c, "shape")
	if err != nil {
		return err
	}
	idsB, _ := c.twin.Attrs["ids"].([]int)
	shapeB, _ := c.twin.Attrs["shape"].([]int)
	if i := c.intInput(ids, idsB); i >= 0 {
		x := c.s.Inputs[i].Name
		inA, inB := c.traced[0].inputs[i].Value.Shape, c.traced[1].inputs[i].Value.Shape
		if !slices.Equal(inA, shape) {
			target, err := reshapeTarget(inA, inB, shape, shapeB, nil)
			if err != nil {
				return err
			}
			x = c.b.op1("Reshape", []string{x, c.b.constI64([]int{len(target)}, target...)})
		}
		return c.emitOut("Gather", []string{c.in[0], x}, aInt("axis", 0))
	}
	if slices.Equal(ids, idsB) && slices.Equal(shape, shapeB) {
		return c.emitOut("Gather", []string{c.in[0], c.b.constI64(shape, int64s(ids)...)}, aInt("axis", 0))
	}
	idx, err := c.batchFillInt(ids, idsB, shape, shapeB)
	if err != nil {
		return fmt.Errorf("embedding ids: %w", err)
	}
	return c.emitOut("Gather", []string{c.in[0], idx}, aInt("axis", 0))
}

// ExportableOps lists, sorted, the engine ops (autograd.Node.Op names) that
// export maps to ONNX nodes; the conformance package checks that each one
// has a per-op case.
func ExportableOps() []string {
	var out []string
	for op, f := range ops {
		if f != nil {
			out = append(out, op)
		}
	}
	slices.Sort(out)
	return out
}
