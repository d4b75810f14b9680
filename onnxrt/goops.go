package onnxrt

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/export/onnxpb"
	"github.com/sslzoo/sslzoo/tensor"
)

// goOps maps ONNX op types to the Go engine. Heavy ops run on the autograd
// kernels; ops the engine has no kernel for (Reciprocal, Pow of two tensors, ...)
// and int64 shape arithmetic are plain loops here.
var goOps map[string]*goOp

func init() {
	goOps = map[string]*goOp{
		"Identity":           {run: identity},
		"Dropout":            {check: checkDropout, run: identity},
		"Relu":               unaryOp(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.ReLU(x) }),
		"Sigmoid":            unaryOp(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Sigmoid(x) }),
		"Tanh":               unaryOp(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Tanh(x) }),
		"Neg":                unaryOp(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Neg(x) }),
		"Exp":                unaryOp(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Exp(x) }),
		"Log":                unaryOp(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Log(x) }),
		"Sqrt":               unaryOp(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Sqrt(x) }),
		"Abs":                unaryOp(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Abs(x) }),
		"Erf":                unaryOp(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Erf(x) }),
		"Add":                {run: arith("Add")},
		"Sub":                {run: arith("Sub")},
		"Mul":                {run: arith("Mul")},
		"Div":                {run: arith("Div")},
		"Pow":                {run: pow},
		"Max":                {run: variadic(func(a, b float32) float32 { return nanOr(a, b, max(a, b)) })},
		"Min":                {run: variadic(func(a, b float32) float32 { return nanOr(a, b, min(a, b)) })},
		"MatMul":             {run: matMul},
		"Gemm":               {run: gemm},
		"Conv":               {check: checkConv, run: conv},
		"ConvTranspose":      {check: checkConvTranspose, run: convTranspose},
		"BatchNormalization": {check: checkBatchNorm, run: batchNorm},
		"MaxPool":            {check: checkPool, run: pool(false)},
		"AveragePool":        {check: checkPool, run: pool(true)},
		"GlobalAveragePool":  {run: globalAvgPool},
		"Flatten":            {run: flatten},
		"Reshape":            {run: reshape},
		"Transpose":          {run: transpose},
		"Concat":             {run: concat},
		"Slice":              {run: slice},
		"Gather":             {run: gather},
		"Softmax":            {run: softmax(false)},
		"LogSoftmax":         {run: softmax(true)},
		"ReduceSum":          {run: reduce("sum")},
		"ReduceMean":         {run: reduce("mean")},
		"ReduceMax":          {run: reduce("max")},
		"ReduceL2":           {run: reduce("l2")},
		"ReduceSumSquare":    {run: reduce("sumsquare")},
		"ReduceMin":          {run: reduce("min")},
		"ReduceL1":           {run: reduce("l1")},
		"ReduceLogSum":       {run: reduce("logsum")},
		"ReduceLogSumExp":    {run: reduce("logsumexp")},
		"LayerNormalization": {check: checkLayerNorm, run: layerNorm},
		"Shape":              {run: shapeOp},
		"ConstantOfShape":    {run: constantOfShape},
		"Constant":           {check: checkConstant, run: constant},
		"Unsqueeze":          {run: unsqueeze},
		"Squeeze":            {run: squeeze},
		"Cast":               {run: cast},
		"Reciprocal":         {run: mapFloat(func(x float32) float32 { return 1 / x })},
		"Size":               {run: size},
		"ArgMax":             {run: argExtreme(true)},
		"ArgMin":             {run: argExtreme(false)},
		"Resize":             {check: checkResize, run: resize},

		// Quantization (goops_quant.go).
		"QuantizeLinear":        {check: checkQDQ, run: quantizeLinear, types: quantizeTypes},
		"DequantizeLinear":      {check: checkQDQ, run: dequantizeLinear, types: dequantizeTypes},
		"DynamicQuantizeLinear": {run: dynamicQuantizeLinear, types: dynamicQuantizeTypes},
	}
	for name, op := range elementwiseOps() {
		goOps[name] = op
		floatOnly[name] = true
	}
}

// maxDeclaredElements caps a tensor whose size the file declares (an
// attribute or a shape input) rather than data it carries: 2^31 values
// (8 GiB of float32) unless SSLZOO_MAX_TENSOR_ELEMENTS raises it for a
// genuinely huge model.
var maxDeclaredElements = envElements("SSLZOO_MAX_TENSOR_ELEMENTS", 1<<31)

func envElements(name string, def int) int {
	if v, err := strconv.ParseInt(os.Getenv(name), 10, 64); err == nil && v > 0 && v <= math.MaxInt {
		return int(v)
	}
	return def
}

// declaredSize is the element count of a shape the file declares, refused
// when a dimension is negative or the count passes maxDeclaredElements.
func declaredSize(shape []int) (int, error) {
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v has a negative dimension", shape)
		}
	}
	n, ok := checkedNumel(shape)
	if !ok || n > maxDeclaredElements {
		return 0, fmt.Errorf("shape %v has more than %d elements (SSLZOO_MAX_TENSOR_ELEMENTS raises the limit)", shape, maxDeclaredElements)
	}
	return n, nil
}

// ---- attributes ----

func attrInt(n *gnode, name string, def int) int {
	if a, ok := n.attrs[name]; ok {
		return int(a.GetI())
	}
	return def
}

func attrInts(n *gnode, name string) ([]int, bool) {
	a, ok := n.attrs[name]
	if !ok {
		return nil, false
	}
	v := make([]int, len(a.GetInts()))
	for i, x := range a.GetInts() {
		v[i] = int(x)
	}
	return v, true
}

func attrFloat(n *gnode, name string, def float32) float32 {
	if a, ok := n.attrs[name]; ok {
		return a.GetF()
	}
	return def
}

func attrString(n *gnode, name, def string) string {
	if a, ok := n.attrs[name]; ok {
		return string(a.GetS())
	}
	return def
}

// ---- value helpers ----

func fl(t *tensor.Tensor) *gval { return &gval{f: t} }

func fv(v *autograd.Var) []*gval { return []*gval{{f: v.Value}} }

func iv(shape []int, data []int64) []*gval {
	return []*gval{{i: &itensor{shape: shape, data: data}}}
}

// need fetches input i, which must be present.
func need(n *gnode, in []*gval, i int) (*gval, error) {
	if i >= len(in) || in[i] == nil {
		return nil, fmt.Errorf("input %d is required", i)
	}
	return in[i], nil
}

// float fetches input i as a float32 Var.
func float(n *gnode, in []*gval, i int) (*autograd.Var, error) {
	v, err := need(n, in, i)
	if err != nil {
		return nil, err
	}
	if v.f == nil {
		return nil, fmt.Errorf("input %d is int64; this op takes float32 here", i)
	}
	return autograd.Const(v.f), nil
}

// ints fetches an optional int64 input as a Go slice (nil when absent).
func ints(in []*gval, i int) ([]int, bool, error) {
	if i >= len(in) || in[i] == nil {
		return nil, false, nil
	}
	if in[i].i == nil {
		return nil, false, fmt.Errorf("input %d must be int64", i)
	}
	out := make([]int, len(in[i].i.data))
	for k, x := range in[i].i.data {
		out[k] = int(x)
	}
	return out, true, nil
}

func normAx(axis, rank int) (int, error) {
	if axis < -rank || axis >= rank {
		return 0, fmt.Errorf("axis %d out of range for rank %d", axis, rank)
	}
	if axis < 0 {
		axis += rank
	}
	return axis, nil
}

func reshapeVal(tp *autograd.Tape, v *gval, shape []int) *gval {
	if v.f != nil {
		if len(shape) == 0 {
			return fl(&tensor.Tensor{Shape: []int{}, Data: v.f.Data})
		}
		return fl(tp.Reshape(autograd.Const(v.f), shape...).Value)
	}
	return &gval{i: &itensor{shape: slices.Clone(shape), data: v.i.data}}
}

// ---- element-wise ----

func identity(_ *gctx, _ *gnode, in []*gval) ([]*gval, error) {
	if len(in) == 0 || in[0] == nil {
		return nil, errors.New("input 0 is required")
	}
	return []*gval{in[0]}, nil
}

// checkDropout accepts inference-mode Dropout only (one output, no
// training_mode input).
func checkDropout(n *gnode, _ int64) error {
	if len(n.in) > 2 && n.in[2] != "" {
		return errors.New("a training_mode input is not supported (inference only)")
	}
	if len(n.out) > 1 && n.out[1] != "" {
		return errors.New("the mask output is not supported")
	}
	return nil
}

func unaryOp(f func(tp *autograd.Tape, x *autograd.Var) *autograd.Var) *goOp {
	return &goOp{run: func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
		x, err := float(n, in, 0)
		if err != nil {
			return nil, err
		}
		return fv(f(c.tp, x)), nil
	}}
}

// mapFloat applies f element by element (ops without an engine kernel).
func mapFloat(f func(float32) float32) func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	return func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
		x, err := float(n, in, 0)
		if err != nil {
			return nil, err
		}
		out := c.tp.Alloc(x.Value.Shape...)
		for i, v := range x.Value.Data {
			out.Data[i] = f(v)
		}
		out.Shape = slices.Clone(x.Value.Shape)
		return []*gval{fl(out)}, nil
	}
}

func nanOr(a, b, r float32) float32 {
	if a != a {
		return a
	}
	if b != b {
		return b
	}
	return r
}

// broadcastShape applies numpy's rules to two shapes.
func broadcastShape(a, b []int) ([]int, error) {
	n := max(len(a), len(b))
	out := make([]int, n)
	for i := range n {
		da, db := 1, 1
		if j := i - (n - len(a)); j >= 0 {
			da = a[j]
		}
		if j := i - (n - len(b)); j >= 0 {
			db = b[j]
		}
		switch {
		case da == db || db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil, fmt.Errorf("shapes %v and %v do not broadcast", a, b)
		}
	}
	return out, nil
}

// bcastIndex returns, for each element of out, the flat index into a
// tensor of shape s broadcast to out.
func bcastIndex(s, out []int) []int {
	n := tensor.Numel(out)
	idx := make([]int, n)
	st := make([]int, len(out))
	stride := 1
	for i := len(out) - 1; i >= 0; i-- {
		j := i - (len(out) - len(s))
		if j >= 0 && s[j] != 1 {
			st[i] = stride
		}
		if j >= 0 {
			stride *= s[j]
		}
	}
	coord := make([]int, len(out))
	off := 0
	for k := range n {
		idx[k] = off
		for d := len(out) - 1; d >= 0; d-- {
			coord[d]++
			off += st[d]
			if coord[d] < out[d] {
				break
			}
			off -= st[d] * coord[d]
			coord[d] = 0
		}
	}
	return idx
}

// zip2 combines two float tensors with broadcasting.
func zip2(tp *autograd.Tape, a, b *tensor.Tensor, f func(x, y float32) float32) (*tensor.Tensor, error) {
	shape, err := broadcastShape(a.Shape, b.Shape)
	if err != nil {
		return nil, err
	}
	ia, ib := bcastIndex(a.Shape, shape), bcastIndex(b.Shape, shape)
	out := tp.Alloc(shape...)
	for k := range out.Data {
		out.Data[k] = f(a.Data[ia[k]], b.Data[ib[k]])
	}
	out.Shape = shape
	return out, nil
}

// arith runs Add/Sub/Mul/Div on the engine for floats and as loops for
// int64 shape arithmetic.
func arith(op string) func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	return func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
		a, err := need(n, in, 0)
		if err != nil {
			return nil, err
		}
		b, err := need(n, in, 1)
		if err != nil {
			return nil, err
		}
		if a.f != nil && b.f != nil {
			x, y := autograd.Const(a.f), autograd.Const(b.f)
			switch op {
			case "Add":
				return fv(c.tp.Add(x, y)), nil
			case "Sub":
				return fv(c.tp.Sub(x, y)), nil
			case "Mul":
				return fv(c.tp.Mul(x, y)), nil
			}
			return fv(c.tp.Div(x, y)), nil
		}
		if a.i == nil || b.i == nil {
			return nil, errors.New("mixed float32 and int64 operands")
		}
		shape, err := broadcastShape(a.i.shape, b.i.shape)
		if err != nil {
			return nil, err
		}
		ia, ib := bcastIndex(a.i.shape, shape), bcastIndex(b.i.shape, shape)
		out := make([]int64, tensor.Numel(shape))
		for k := range out {
			x, y := a.i.data[ia[k]], b.i.data[ib[k]]
			switch op {
			case "Add":
				out[k] = x + y
			case "Sub":
				out[k] = x - y
			case "Mul":
				out[k] = x * y
			default:
				if y == 0 {
					return nil, errors.New("int64 division by zero")
				}
				out[k] = x / y
			}
		}
		return iv(shape, out), nil
	}
}

func pow(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	x, err := float(n, in, 0)
	if err != nil {
		return nil, err
	}
	y, err := float(n, in, 1)
	if err != nil {
		return nil, err
	}
	out, err := zip2(c.tp, x.Value, y.Value, func(a, b float32) float32 { return float32(math.Pow(float64(a), float64(b))) })
	if err != nil {
		return nil, err
	}
	return []*gval{fl(out)}, nil
}

// variadic folds any number of float inputs with broadcasting (Max, Min).
func variadic(f func(a, b float32) float32) func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	return func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
		acc, err := float(n, in, 0)
		if err != nil {
			return nil, err
		}
		t := acc.Value
		for i := 1; i < len(in); i++ {
			x, err := float(n, in, i)
			if err != nil {
				return nil, err
			}
			if t, err = zip2(c.tp, t, x.Value, f); err != nil {
				return nil, err
			}
		}
		return []*gval{fl(t)}, nil
	}
}

// ---- linear algebra ----

// matMul follows numpy's matmul for the cases the engine has: equal batch
// dimensions or a shared 2-D right operand; 1-D operands gain and lose a
// unit axis.
func matMul(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	a, err := float(n, in, 0)
	if err != nil {
		return nil, err
	}
	b, err := float(n, in, 1)
	if err != nil {
		return nil, err
	}
	as, bs := a.Value.Shape, b.Value.Shape
	if len(as) == 0 || len(bs) == 0 {
		return nil, errors.New("MatMul of a scalar")
	}
	vecA, vecB := len(as) == 1, len(bs) == 1
	if vecA {
		a = c.tp.Reshape(a, 1, as[0])
	}
	if vecB {
		b = c.tp.Reshape(b, bs[0], 1)
	}
	if len(b.Value.Shape) > 2 && !slices.Equal(a.Value.Shape[:len(a.Value.Shape)-2], b.Value.Shape[:len(b.Value.Shape)-2]) {
		return nil, fmt.Errorf("MatMul of %v and %v: batch broadcasting is not supported by the Go engine", as, bs)
	}
	y := c.tp.MatMul(a, b)
	if !vecA && !vecB {
		return fv(y), nil
	}
	// Drop the unit axes that the 1-D operands gained.
	s := slices.Clone(y.Value.Shape)
	switch {
	case vecA && vecB:
		s = s[:len(s)-2]
	case vecA:
		s = slices.Delete(s, len(s)-2, len(s)-1)
	default:
		s = s[:len(s)-1]
	}
	return []*gval{reshapeVal(c.tp, fl(y.Value), s)}, nil
}

func gemm(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	a, err := float(n, in, 0)
	if err != nil {
		return nil, err
	}
	b, err := float(n, in, 1)
	if err != nil {
		return nil, err
	}
	if len(a.Value.Shape) != 2 || len(b.Value.Shape) != 2 {
		return nil, fmt.Errorf("Gemm needs 2-D A and B, got %v and %v", a.Value.Shape, b.Value.Shape)
	}
	y := c.tp.MatMulT(a, b, attrInt(n, "transA", 0) != 0, attrInt(n, "transB", 0) != 0)
	if alpha := attrFloat(n, "alpha", 1); alpha != 1 {
		y = c.tp.MulScalar(y, alpha)
	}
	if len(in) > 2 && in[2] != nil {
		cv, err := float(n, in, 2)
		if err != nil {
			return nil, err
		}
		if beta := attrFloat(n, "beta", 1); beta != 1 {
			cv = c.tp.MulScalar(cv, beta)
		}
		y = c.tp.Add(y, cv)
	}
	return fv(y), nil
}

// ---- convolution and pooling ----

// pads2d reads a 2-D op's padding as [top, left, bottom, right]: explicit
// pads, VALID, or SAME_UPPER/SAME_LOWER computed for this input.
func pads2d(n *gnode, in, kernel, stride, dilation [2]int) ([4]int, error) {
	var pad [4]int
	switch ap := attrString(n, "auto_pad", "NOTSET"); ap {
	case "NOTSET", "":
		p, ok := attrInts(n, "pads")
		if !ok {
			return pad, nil
		}
		if len(p) != 4 {
			return pad, fmt.Errorf("pads %v: need 4 values for 2-D", p)
		}
		for _, v := range p {
			if v < 0 {
				return pad, fmt.Errorf("negative pads %v", p)
			}
		}
		return [4]int{p[0], p[1], p[2], p[3]}, nil
	case "VALID":
		return pad, nil
	case "SAME_UPPER", "SAME_LOWER":
		for i := range 2 {
			out := (in[i] + stride[i] - 1) / stride[i]
			total := max(0, (out-1)*stride[i]+(kernel[i]-1)*dilation[i]+1-in[i])
			small, big := total/2, total-total/2
			if ap == "SAME_UPPER" {
				pad[i], pad[i+2] = small, big
			} else {
				pad[i], pad[i+2] = big, small
			}
		}
		return pad, nil
	default:
		return pad, fmt.Errorf("auto_pad %q is not supported", ap)
	}
}

// padNCHW copies x [N,C,H,W] into a larger buffer filled with v, offset by
// the top and left padding.
func padNCHW(tp *autograd.Tape, x *tensor.Tensor, pad [4]int, v float32) *tensor.Tensor {
	if pad == [4]int{} {
		return x
	}
	n, c, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	ph, pw := h+pad[0]+pad[2], w+pad[1]+pad[3]
	out := tp.Alloc(n, c, ph, pw)
	out.Fill(v)
	for p := range n * c {
		for r := range h {
			copy(out.Data[(p*ph+r+pad[0])*pw+pad[1]:], x.Data[(p*h+r)*w:(p*h+r+1)*w])
		}
	}
	return out
}

func pair(n *gnode, name string, def int) ([2]int, error) {
	v, ok := attrInts(n, name)
	if !ok {
		return [2]int{def, def}, nil
	}
	if len(v) != 2 {
		return [2]int{}, fmt.Errorf("%s %v: only 2-D is supported", name, v)
	}
	return [2]int{v[0], v[1]}, nil
}

func checkConv(n *gnode, _ int64) error {
	for _, k := range []string{"strides", "dilations", "kernel_shape"} {
		if _, err := pair(n, k, 1); err != nil {
			return err
		}
	}
	if p, ok := attrInts(n, "pads"); ok && len(p) != 4 {
		return fmt.Errorf("pads %v: only 2-D is supported", p)
	}
	return nil
}

// weightedInputs reads the float inputs X, W and the optional bias B that
// Conv and LayerNormalization share.
func weightedInputs(n *gnode, in []*gval) (x, w, b *autograd.Var, err error) {
	if x, err = float(n, in, 0); err != nil {
		return nil, nil, nil, err
	}
	if w, err = float(n, in, 1); err != nil {
		return nil, nil, nil, err
	}
	if len(in) > 2 && in[2] != nil {
		if b, err = float(n, in, 2); err != nil {
			return nil, nil, nil, err
		}
	}
	return x, w, b, nil
}

func conv(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	x, w, b, err := weightedInputs(n, in)
	if err != nil {
		return nil, err
	}
	p, pad, err := convSetup(n, x.Value.Shape, w.Value.Shape)
	if err != nil {
		return nil, err
	}
	if pad[0] != pad[2] || pad[1] != pad[3] {
		// The engine pads symmetrically; other padding is applied first.
		x = autograd.Const(padNCHW(c.tp, x.Value, pad, 0))
	}
	return fv(c.tp.Conv2d(x, w, b, p)), nil
}

// convSetup reads a 2-D Conv's parameters for input shape xs and weight
// shape ws. pad is [top, left, bottom, right]; p carries it only when it
// is symmetric.
func convSetup(n *gnode, xs, ws []int) (p autograd.ConvParams, pad [4]int, err error) {
	if len(xs) != 4 || len(ws) != 4 {
		return p, pad, fmt.Errorf("only 2-D convolution is supported (x %v, w %v)", xs, ws)
	}
	stride, _ := pair(n, "strides", 1)
	dil, _ := pair(n, "dilations", 1)
	if pad, err = pads2d(n, [2]int{xs[2], xs[3]}, [2]int{ws[2], ws[3]}, stride, dil); err != nil {
		return p, pad, err
	}
	p = autograd.ConvParams{StrideH: stride[0], StrideW: stride[1],
		DilationH: dil[0], DilationW: dil[1], Groups: attrInt(n, "group", 1),
		Exact: true} // held to ONNX Runtime's output: no Winograd
	if pad[0] == pad[2] && pad[1] == pad[3] {
		p.PadH, p.PadW = pad[0], pad[1]
	}
	return p, pad, nil
}

func checkBatchNorm(n *gnode, opset int64) error {
	if attrInt(n, "training_mode", 0) != 0 {
		return errors.New("training_mode is not supported (inference only)")
	}
	for _, o := range n.out[min(1, len(n.out)):] {
		if o != "" {
			return errors.New("running statistics outputs are not supported (inference only)")
		}
	}
	if opset < 7 {
		return fmt.Errorf("BatchNormalization from opset %d (spatial/is_test attributes) is not supported", opset)
	}
	return nil
}

func batchNorm(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	x, err := float(n, in, 0)
	if err != nil {
		return nil, err
	}
	var p [4]*autograd.Var
	for i := range p {
		if p[i], err = float(n, in, i+1); err != nil {
			return nil, err
		}
	}
	xs := x.Value.Shape
	if len(xs) < 2 {
		return nil, fmt.Errorf("x shape %v: need [N, C, ...]", xs)
	}
	eps := attrFloat(n, "epsilon", 1e-5)
	// The engine takes [N,C] and [N,C,H,W]; other ranks fold their spatial
	// axes into H.
	y := x
	if len(xs) != 2 && len(xs) != 4 {
		y = c.tp.Reshape(x, xs[0], xs[1], tensor.Numel(xs[2:]), 1)
	}
	y = c.tp.BatchNorm(y, p[0], p[1], p[2].Value, p[3].Value, false, 0.1, eps)
	if len(xs) != 2 && len(xs) != 4 {
		y = c.tp.Reshape(y, xs...)
	}
	return fv(y), nil
}

// checkPool accepts 2-D windows of any shape and strides, with any
// padding, auto_pad, ceil_mode and count_include_pad.
func checkPool(n *gnode, _ int64) error {
	k, ok := attrInts(n, "kernel_shape")
	if !ok || len(k) != 2 || k[0] < 1 || k[1] < 1 {
		return fmt.Errorf("kernel_shape %v: only 2-D kernels are supported", k)
	}
	if _, err := pair(n, "strides", 1); err != nil {
		return err
	}
	if d, err := pair(n, "dilations", 1); err != nil || d != [2]int{1, 1} {
		return fmt.Errorf("dilations %v are not supported", d)
	}
	if attrInt(n, "storage_order", 0) != 0 || (len(n.out) > 1 && n.out[1] != "") {
		return errors.New("the Indices output is not supported")
	}
	if p, ok := attrInts(n, "pads"); ok && len(p) != 4 {
		return fmt.Errorf("pads %v: only 2-D is supported", p)
	}
	return nil
}

// pool runs the engine's unpadded pooling on an explicitly padded input:
// -inf padding for max; for average, the sum over the window divided by
// the number of counted positions (padding counts only with
// count_include_pad, the ceil_mode overhang never).
func pool(avg bool) func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	return func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
		x, err := float(n, in, 0)
		if err != nil {
			return nil, err
		}
		xs := x.Value.Shape
		if len(xs) != 4 {
			return nil, fmt.Errorf("x shape %v: only 2-D pooling is supported", xs)
		}
		k, _ := attrInts(n, "kernel_shape")
		kk := [2]int{k[0], k[1]}
		st, _ := pair(n, "strides", 1)
		pad, err := pads2d(n, [2]int{xs[2], xs[3]}, kk, st, [2]int{1, 1})
		if err != nil {
			return nil, err
		}
		full := pad // explicit padding plus the ceil_mode overhang
		if attrInt(n, "ceil_mode", 0) != 0 {
			for i := range 2 {
				span := xs[2+i] + pad[i] + pad[i+2]
				out := (span-kk[i]+st[i]-1)/st[i] + 1
				// The last window must start inside the input or its
				// leading padding (as PyTorch and ONNX Runtime do).
				if (out-1)*st[i] >= xs[2+i]+pad[i] {
					out--
				}
				full[i+2] += max(0, (out-1)*st[i]+kk[i]-span)
			}
		}
		if !avg {
			y, err := poolPadded(c, true, padNCHW(c.tp, x.Value, full, float32(math.Inf(-1))), kk, st)
			if err != nil {
				return nil, err
			}
			return fv(y), nil
		}
		sum, err := poolPadded(c, false, padNCHW(c.tp, x.Value, full, 0), kk, st)
		if err != nil {
			return nil, err
		}
		cip := attrInt(n, "count_include_pad", 0) != 0
		if full == pad && (cip || pad == [4]int{}) {
			return fv(sum), nil
		}
		// Count the positions that belong in each window's divisor.
		mask := c.tp.Alloc(1, 1, xs[2], xs[3])
		mask.Fill(1)
		padV := float32(0)
		if cip {
			padV = 1
		}
		m := padNCHW(c.tp, mask, pad, padV)
		m = padNCHW(c.tp, m, [4]int{0, 0, full[2] - pad[2], full[3] - pad[3]}, 0)
		frac, err := poolPadded(c, false, m, kk, st)
		if err != nil {
			return nil, err
		}
		return fv(c.tp.Div(sum, frac)), nil
	}
}

// poolPadded is the unpadded max or average pool of x (already padded)
// with window k and strides st, each per axis (height, width): the
// tensor kernels directly, since inference needs no tape record.
func poolPadded(c *gctx, isMax bool, x *tensor.Tensor, k, st [2]int) (*autograd.Var, error) {
	s := x.Shape
	g := tensor.PoolGeom{N: s[0], C: s[1], H: s[2], W: s[3], KH: k[0], KW: k[1], StrideH: st[0], StrideW: st[1]}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	y := c.tp.Alloc(g.N, g.C, g.OutH(), g.OutW())
	if isMax {
		ws := c.tp.Alloc(tensor.MaxPoolWorkspaceLen(g))
		tensor.MaxPoolForward(g, x.Data, y.Data, ws.Data)
	} else {
		tensor.AvgPoolForward(g, x.Data, y.Data)
	}
	return autograd.Const(y), nil
}

func globalAvgPool(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	x, err := float(n, in, 0)
	if err != nil {
		return nil, err
	}
	xs := x.Value.Shape
	if len(xs) < 3 {
		return nil, fmt.Errorf("x shape %v: need [N, C, spatial...]", xs)
	}
	y := x
	if len(xs) != 4 {
		y = c.tp.Reshape(x, xs[0], xs[1], tensor.Numel(xs[2:]), 1)
	}
	out := make([]int, len(xs))
	for i := range out {
		out[i] = 1
	}
	out[0], out[1] = xs[0], xs[1]
	return fv(c.tp.Reshape(c.tp.GlobalAvgPool(y), out...)), nil
}

// ---- shape ops ----

func flatten(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	s := x.shape()
	axis := attrInt(n, "axis", 1)
	if axis < 0 {
		axis += len(s)
	}
	if axis < 0 || axis > len(s) {
		return nil, fmt.Errorf("axis %d out of range for shape %v", attrInt(n, "axis", 1), s)
	}
	return []*gval{reshapeVal(c.tp, x, []int{tensor.Numel(s[:axis]), tensor.Numel(s[axis:])})}, nil
}

func reshape(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	var want []int
	if c.opset < 5 {
		want, _ = attrInts(n, "shape")
	} else {
		var ok bool
		if want, ok, err = ints(in, 1); err != nil || !ok {
			return nil, fmt.Errorf("shape input: %v", err)
		}
	}
	s := x.shape()
	allowZero := attrInt(n, "allowzero", 0) != 0
	target := slices.Clone(want)
	infer := -1
	known := 1
	for i, d := range target {
		if d > 0 && known > math.MaxInt/d {
			return nil, fmt.Errorf("shape %v: the element count overflows", want)
		}
		switch {
		case d == 0 && !allowZero:
			if i >= len(s) {
				return nil, fmt.Errorf("shape %v copies dimension %d of %v", want, i, s)
			}
			target[i] = s[i]
		case d == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("shape %v has two -1", want)
			}
			infer = i
			continue
		case d < 0:
			return nil, fmt.Errorf("shape %v has a negative dimension", want)
		}
		known *= target[i]
	}
	total := tensor.Numel(s)
	if infer >= 0 {
		if known == 0 || total%known != 0 {
			return nil, fmt.Errorf("cannot reshape %v to %v", s, want)
		}
		target[infer] = total / known
	} else if known != total {
		return nil, fmt.Errorf("cannot reshape %v (%d elements) to %v", s, total, want)
	}
	return []*gval{reshapeVal(c.tp, x, target)}, nil
}

func transpose(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	x, err := float(n, in, 0)
	if err != nil {
		return nil, err
	}
	perm, ok := attrInts(n, "perm")
	if !ok {
		r := len(x.Value.Shape)
		perm = make([]int, r)
		for i := range perm {
			perm[i] = r - 1 - i
		}
	}
	return fv(c.tp.Transpose(x, perm...)), nil
}

func concat(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	if len(in) == 0 {
		return nil, errors.New("no inputs")
	}
	for i := range in {
		if _, err := need(n, in, i); err != nil {
			return nil, err
		}
	}
	rank := len(in[0].shape())
	axis, err := normAx(attrInt(n, "axis", 0), rank)
	if err != nil {
		return nil, err
	}
	if in[0].f != nil {
		xs := make([]*autograd.Var, len(in))
		for i := range in {
			if xs[i], err = float(n, in, i); err != nil {
				return nil, err
			}
		}
		return fv(c.tp.Concat(xs, axis)), nil
	}
	// int64 (shape vectors): outer blocks of each input in turn.
	out := slices.Clone(in[0].i.shape)
	out[axis] = 0
	for _, v := range in {
		if v.i == nil || len(v.i.shape) != rank {
			return nil, errors.New("Concat of int64 values needs int64 inputs of one rank")
		}
		out[axis] += v.i.shape[axis]
	}
	outer := tensor.Numel(out[:axis])
	var data []int64
	for o := range outer {
		for _, v := range in {
			blk := tensor.Numel(v.i.shape[axis:])
			data = append(data, v.i.data[o*blk:(o+1)*blk]...)
		}
	}
	return iv(out, data), nil
}

// slice supports step 1 on any number of axes, with ONNX's clamping.
func slice(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	var starts, ends, axes, steps []int
	if c.opset < 10 {
		starts, _ = attrInts(n, "starts")
		ends, _ = attrInts(n, "ends")
		axes, _ = attrInts(n, "axes")
	} else {
		var e [4]error
		starts, _, e[0] = ints(in, 1)
		ends, _, e[1] = ints(in, 2)
		axes, _, e[2] = ints(in, 3)
		steps, _, e[3] = ints(in, 4)
		if err := errors.Join(e[:]...); err != nil {
			return nil, err
		}
	}
	if len(starts) != len(ends) {
		return nil, fmt.Errorf("%d starts but %d ends", len(starts), len(ends))
	}
	s := x.shape()
	if axes == nil {
		axes = make([]int, len(starts))
		for i := range axes {
			axes[i] = i
		}
	}
	if len(axes) != len(starts) || (steps != nil && len(steps) != len(starts)) {
		return nil, errors.New("starts, ends, axes and steps differ in length")
	}
	cur := x
	for k, a := range axes {
		step := 1
		if steps != nil {
			step = steps[k]
		}
		if step == 0 {
			return nil, errors.New("slice step 0")
		}
		ax, err := normAx(a, len(s))
		if err != nil {
			return nil, err
		}
		dim := s[ax]
		st, en := starts[k], ends[k]
		if st < 0 {
			st += dim
		}
		if en < 0 {
			en += dim
		}
		if step > 0 {
			st, en = max(0, min(st, dim)), max(0, min(en, dim))
			if step == 1 {
				en = max(en, st)
				if cur.f != nil {
					cur = fl(c.tp.Slice(autograd.Const(cur.f), ax, st, en).Value)
				} else {
					cur = sliceInts(cur.i, ax, st, en)
				}
				continue
			}
		} else {
			st, en = max(0, min(st, dim-1)), max(-1, min(en, dim-1))
		}
		// Other steps pick their indices one by one.
		var idx []int
		for i := st; (step > 0 && i < en) || (step < 0 && i > en); i += step {
			idx = append(idx, i)
		}
		if cur.f == nil {
			return nil, errors.New("strided Slice of int64 values is not supported")
		}
		if len(idx) == 0 {
			out := slices.Clone(cur.f.Shape)
			out[ax] = 0
			cur = fl(&tensor.Tensor{Shape: out, Data: nil})
			continue
		}
		cur = fl(c.tp.Gather(autograd.Const(cur.f), ax, idx).Value)
	}
	return []*gval{cur}, nil
}

func sliceInts(t *itensor, axis, start, end int) *gval {
	out := slices.Clone(t.shape)
	out[axis] = end - start
	outer, post := tensor.Numel(t.shape[:axis]), tensor.Numel(t.shape[axis+1:])
	var data []int64
	for o := range outer {
		base := o * t.shape[axis] * post
		data = append(data, t.data[base+start*post:base+end*post]...)
	}
	return &gval{i: &itensor{shape: out, data: data}}
}

func gather(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	idxV, err := need(n, in, 1)
	if err != nil {
		return nil, err
	}
	if idxV.i == nil {
		return nil, errors.New("indices must be int64")
	}
	s := x.shape()
	axis, err := normAx(attrInt(n, "axis", 0), len(s))
	if err != nil {
		return nil, err
	}
	idx := make([]int, len(idxV.i.data))
	for k, j := range idxV.i.data {
		if j < 0 {
			j += int64(s[axis])
		}
		if j < 0 || j >= int64(s[axis]) {
			return nil, fmt.Errorf("index %d out of range for axis %d of %v", idxV.i.data[k], axis, s)
		}
		idx[k] = int(j)
	}
	out := append(append(slices.Clone(s[:axis]), idxV.i.shape...), s[axis+1:]...)
	var g *gval
	if x.f != nil {
		g = fl(c.tp.Gather(autograd.Const(x.f), axis, idx).Value)
	} else {
		outer, post := tensor.Numel(s[:axis]), tensor.Numel(s[axis+1:])
		var data []int64
		for o := range outer {
			for _, j := range idx {
				base := (o*s[axis] + j) * post
				data = append(data, x.i.data[base:base+post]...)
			}
		}
		g = &gval{i: &itensor{data: data}}
	}
	return []*gval{reshapeVal(c.tp, g, out)}, nil
}

// softmax: opset 13 normalises along one axis; earlier opsets flatten to
// 2-D at axis and normalise the rows.
func softmax(logOut bool) func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	return func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
		x, err := float(n, in, 0)
		if err != nil {
			return nil, err
		}
		s := x.Value.Shape
		f := c.tp.Softmax
		if logOut {
			f = c.tp.LogSoftmax
		}
		if c.opset >= 13 {
			return fv(f(x, attrInt(n, "axis", -1))), nil
		}
		axis, err := normAx(attrInt(n, "axis", 1), len(s))
		if err != nil {
			return nil, err
		}
		y := f(c.tp.Reshape(x, tensor.Numel(s[:axis]), tensor.Numel(s[axis:])), 1)
		return fv(c.tp.Reshape(y, s...)), nil
	}
}

func reduce(kind string) func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	return func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
		x, err := float(n, in, 0)
		if err != nil {
			return nil, err
		}
		s := x.Value.Shape
		var axes []int
		if kind == "sum" && c.opset >= 13 {
			if axes, _, err = ints(in, 1); err != nil {
				return nil, err
			}
		} else {
			axes, _ = attrInts(n, "axes")
		}
		keep := attrInt(n, "keepdims", 1) != 0
		if len(axes) == 0 {
			if attrInt(n, "noop_with_empty_axes", 0) != 0 {
				return fv(x), nil
			}
			axes = make([]int, len(s))
			for i := range axes {
				axes[i] = i
			}
		}
		for i, a := range axes {
			if axes[i], err = normAx(a, len(s)); err != nil {
				return nil, err
			}
		}
		slices.Sort(axes)
		axes = slices.Compact(axes)
		out := make([]int, 0, len(s))
		for i, d := range s {
			switch {
			case !slices.Contains(axes, i):
				out = append(out, d)
			case keep:
				out = append(out, 1)
			}
		}
		var y *autograd.Var
		switch kind {
		case "sum":
			y = c.tp.Sum(x, axes, true)
		case "mean":
			y = c.tp.Mean(x, axes, true)
		case "sumsquare":
			y = c.tp.Sum(c.tp.Square(x), axes, true)
		case "l2":
			y = c.tp.Sqrt(c.tp.Sum(c.tp.Square(x), axes, true))
		case "max":
			y = x
			for _, a := range axes {
				y = c.tp.Max(y, a, true)
			}
		case "min":
			y = c.tp.Neg(x)
			for _, a := range axes {
				y = c.tp.Max(y, a, true)
			}
			y = c.tp.Neg(y)
		case "l1":
			y = c.tp.Sum(c.tp.Abs(x), axes, true)
		case "logsum":
			y = c.tp.Log(c.tp.Sum(x, axes, true))
		case "logsumexp":
			// Shift by the maximum so that large inputs do not overflow.
			m := x
			for _, a := range axes {
				m = c.tp.Max(m, a, true)
			}
			y = c.tp.Add(c.tp.Log(c.tp.Sum(c.tp.Exp(c.tp.Sub(x, m)), axes, true)), m)
		}
		return []*gval{reshapeVal(c.tp, fl(y.Value), out)}, nil
	}
}

func checkLayerNorm(n *gnode, _ int64) error {
	if attrInt(n, "stash_type", 1) != 1 {
		return errors.New("stash_type other than float32 is not supported")
	}
	return nil
}

// layerNorm normalises over axes [axis, rank) by folding them into one.
func layerNorm(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	x, w, b, err := weightedInputs(n, in)
	if err != nil {
		return nil, err
	}
	s := x.Value.Shape
	axis, err := normAx(attrInt(n, "axis", -1), len(s))
	if err != nil {
		return nil, err
	}
	inner := tensor.Numel(s[axis:])
	if w.Value.Numel() != inner || (b != nil && b.Value.Numel() != inner) {
		return nil, fmt.Errorf("scale %v / bias for x %v at axis %d: need %v", w.Value.Shape, s, axis, s[axis:])
	}
	w = c.tp.Reshape(w, inner)
	if b != nil {
		b = c.tp.Reshape(b, inner)
	}
	eps := attrFloat(n, "epsilon", 1e-5)
	x2 := c.tp.Reshape(x, tensor.Numel(s[:axis]), inner)
	y := c.tp.LayerNorm(x2, w, b, eps)
	res := fv(c.tp.Reshape(y, s...))
	if len(n.out) > 1 {
		// The optional Mean and InvStdDev outputs, shaped s[:axis] + 1s.
		stat := slices.Clone(s)
		for i := axis; i < len(stat); i++ {
			stat[i] = 1
		}
		mean := c.tp.Mean(x2, []int{1}, true)
		v := c.tp.Mean(c.tp.Square(c.tp.Sub(x2, mean)), []int{1}, true)
		inv := c.tp.PowScalar(c.tp.AddScalar(v, eps), -0.5)
		res = append(res, reshapeVal(c.tp, fl(mean.Value), stat), reshapeVal(c.tp, fl(inv.Value), stat))
	}
	return res, nil
}

func size(_ *gctx, n *gnode, in []*gval) ([]*gval, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	return iv([]int{}, []int64{int64(tensor.Numel(x.shape()))}), nil
}

// argExtreme is ArgMax/ArgMin along one axis (first or last occurrence).
func argExtreme(isMax bool) func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	return func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
		x, err := float(n, in, 0)
		if err != nil {
			return nil, err
		}
		s := x.Value.Shape
		axis, err := normAx(attrInt(n, "axis", 0), len(s))
		if err != nil {
			return nil, err
		}
		last := attrInt(n, "select_last_index", 0) != 0
		outer, dim, post := tensor.Numel(s[:axis]), s[axis], tensor.Numel(s[axis+1:])
		if dim == 0 {
			return nil, fmt.Errorf("axis %d of %v is empty", axis, s)
		}
		data := make([]int64, outer*post)
		for o := range outer {
			for p := range post {
				best, bi := x.Value.Data[o*dim*post+p], 0
				for k := 1; k < dim; k++ {
					v := x.Value.Data[(o*dim+k)*post+p]
					better := (isMax && v > best) || (!isMax && v < best)
					if better || (last && v == best) {
						best, bi = v, k
					}
				}
				data[o*post+p] = int64(bi)
			}
		}
		out := slices.Clone(s)
		if attrInt(n, "keepdims", 1) != 0 {
			out[axis] = 1
		} else {
			out = slices.Delete(out, axis, axis+1)
		}
		return iv(out, data), nil
	}
}

func shapeOp(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	s := x.shape()
	r := len(s)
	clampAx := func(v int) int {
		if v < 0 {
			v += r
		}
		return max(0, min(v, r))
	}
	start, end := clampAx(attrInt(n, "start", 0)), r
	if _, ok := n.attrs["end"]; ok {
		end = clampAx(attrInt(n, "end", r))
	}
	end = max(end, start)
	data := make([]int64, end-start)
	for i := range data {
		data[i] = int64(s[start+i])
	}
	return iv([]int{len(data)}, data), nil
}

// tensorAttr decodes a TENSOR attribute.
func tensorAttr(t *onnxpb.TensorProto) (*gval, error) {
	if t == nil {
		return nil, errors.New("missing tensor value")
	}
	return valueFromProto(t)
}

func constantOfShape(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	shape, ok, err := ints(in, 0)
	if err != nil || !ok {
		return nil, fmt.Errorf("shape input: %v", err)
	}
	fill := &gval{f: &tensor.Tensor{Shape: []int{1}, Data: []float32{0}}}
	if a, ok := n.attrs["value"]; ok {
		if fill, err = tensorAttr(a.GetT()); err != nil {
			return nil, err
		}
		if (fill.f != nil && len(fill.f.Data) != 1) || (fill.f == nil && len(fill.i.data) != 1) {
			return nil, errors.New("the value attribute must hold exactly one element")
		}
	}
	size, err := declaredSize(shape)
	if err != nil {
		return nil, fmt.Errorf("shape input: %w", err)
	}
	if fill.f != nil {
		out := c.tp.Alloc(shape...)
		out.Fill(fill.f.Data[0])
		out.Shape = shape
		return []*gval{fl(out)}, nil
	}
	data := make([]int64, size)
	for i := range data {
		data[i] = fill.i.data[0]
	}
	return iv(shape, data), nil
}

func checkConstant(n *gnode, _ int64) error {
	for k := range n.attrs {
		switch k {
		case "value", "value_float", "value_floats", "value_int", "value_ints":
		default:
			return fmt.Errorf("attribute %s is not supported", k)
		}
	}
	if a, ok := n.attrs["value"]; ok {
		_, err := tensorAttr(a.GetT())
		return err
	}
	return nil
}

func constant(_ *gctx, n *gnode, _ []*gval) ([]*gval, error) {
	if a, ok := n.attrs["value"]; ok {
		v, err := tensorAttr(a.GetT())
		return []*gval{v}, err
	}
	if a, ok := n.attrs["value_float"]; ok {
		return []*gval{fl(&tensor.Tensor{Shape: []int{}, Data: []float32{a.GetF()}})}, nil
	}
	if a, ok := n.attrs["value_floats"]; ok {
		return []*gval{fl(&tensor.Tensor{Shape: []int{len(a.GetFloats())}, Data: slices.Clone(a.GetFloats())})}, nil
	}
	if a, ok := n.attrs["value_int"]; ok {
		return iv([]int{}, []int64{a.GetI()}), nil
	}
	if a, ok := n.attrs["value_ints"]; ok {
		return iv([]int{len(a.GetInts())}, slices.Clone(a.GetInts())), nil
	}
	return nil, errors.New("Constant without a value")
}

func axesArg(c *gctx, n *gnode, in []*gval) ([]int, bool, error) {
	if c.opset >= 13 {
		return ints(in, 1)
	}
	a, ok := attrInts(n, "axes")
	return a, ok, nil
}

func unsqueeze(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	axes, ok, err := axesArg(c, n, in)
	if err != nil || !ok {
		return nil, fmt.Errorf("axes: %v", err)
	}
	s := x.shape()
	r := len(s) + len(axes)
	ins := make([]bool, r)
	for _, a := range axes {
		ax, err := normAx(a, r)
		if err != nil {
			return nil, err
		}
		if ins[ax] {
			return nil, fmt.Errorf("axis %d repeated", a)
		}
		ins[ax] = true
	}
	out := make([]int, 0, r)
	k := 0
	for i := range r {
		if ins[i] {
			out = append(out, 1)
		} else {
			out = append(out, s[k])
			k++
		}
	}
	return []*gval{reshapeVal(c.tp, x, out)}, nil
}

func squeeze(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	axes, given, err := axesArg(c, n, in)
	if err != nil {
		return nil, err
	}
	s := x.shape()
	drop := make([]bool, len(s))
	if given {
		for _, a := range axes {
			ax, err := normAx(a, len(s))
			if err != nil {
				return nil, err
			}
			if s[ax] != 1 {
				return nil, fmt.Errorf("axis %d of %v is not 1", a, s)
			}
			drop[ax] = true
		}
	} else {
		for i, d := range s {
			drop[i] = d == 1
		}
	}
	var out []int
	for i, d := range s {
		if !drop[i] {
			out = append(out, d)
		}
	}
	return []*gval{reshapeVal(c.tp, x, out)}, nil
}

// cast converts between float32 and int64, the two types the Go engine
// carries.
func cast(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	switch to := DType(attrInt(n, "to", 0)); {
	case to == Float32 && x.f != nil, to == Int64 && x.i != nil:
		return []*gval{x}, nil
	case to == Int32 && x.i != nil:
		return []*gval{wrapped(x)}, nil
	case to == Int32:
		data := make([]int64, len(x.f.Data))
		for i, v := range x.f.Data {
			data[i] = int64(int32(v)) // truncation toward zero; out of range is undefined in ONNX
		}
		return iv(slices.Clone(x.f.Shape), data), nil
	case to == Float32:
		out := c.tp.Alloc(x.i.shape...)
		for i, v := range x.i.data {
			out.Data[i] = float32(v)
		}
		out.Shape = slices.Clone(x.i.shape)
		return []*gval{fl(out)}, nil
	case to == Int64:
		data := make([]int64, len(x.f.Data))
		for i, v := range x.f.Data {
			data[i] = int64(v) // truncation toward zero, as ONNX Cast
		}
		return iv(slices.Clone(x.f.Shape), data), nil
	default:
		return nil, fmt.Errorf("Cast to %v is not supported by the Go engine (float32, int64 and int32 only)", to)
	}
}

// floatOnly lists the ops whose data inputs the Go engine takes as float32
// only; intArgs lists, per op, the inputs that must be int64.
var (
	floatOnly = map[string]bool{
		"Relu": true, "Sigmoid": true, "Tanh": true, "Neg": true, "Exp": true, "Log": true, "Sqrt": true,
		"Abs": true, "Erf": true, "Pow": true, "Max": true, "Min": true, "MatMul": true, "Gemm": true,
		"Conv": true, "ConvTranspose": true, "BatchNormalization": true, "MaxPool": true, "AveragePool": true, "GlobalAveragePool": true,
		"Transpose": true, "Softmax": true, "LogSoftmax": true, "ReduceSum": true, "ReduceMean": true,
		"ReduceMax": true, "ReduceL2": true, "ReduceSumSquare": true, "ReduceMin": true, "ReduceL1": true,
		"ReduceLogSum": true, "ReduceLogSumExp": true, "LayerNormalization": true,
		"Reciprocal": true, "ArgMax": true, "ArgMin": true, "Resize": true,
	}
	// indexTypes: the ops whose integer inputs ONNX allows as int32 too.
	indexTypes = map[string]bool{"Slice": true, "Gather": true}
	intArgs    = map[string][]int{
		"ReduceSum": {1}, "Reshape": {1}, "Slice": {1, 2, 3, 4}, "Gather": {1},
		"Unsqueeze": {1}, "Squeeze": {1}, "ConstantOfShape": {0}, "Resize": {3},
	}
)

// inferTypes gives a node's output element types from its input types, and
// refuses, at load time, type combinations the Go engine cannot run.
func inferTypes(n *gnode, in []DType) ([]DType, error) {
	if n.impl != nil && n.impl.types != nil {
		return n.impl.types(n, in)
	}
	for i, t := range in {
		if t == 0 {
			continue // absent optional input
		}
		switch {
		case slices.Contains(intArgs[n.op], i):
			if t != Int64 && !(t == Int32 && indexTypes[n.op]) {
				return nil, fmt.Errorf("input %d is %v, want int64", i, t)
			}
		case floatOnly[n.op] && t != Float32:
			return nil, fmt.Errorf("input %d is %v; the Go engine runs %s on float32 only", i, t, n.op)
		}
	}
	first := DType(0)
	if len(in) > 0 {
		first = in[0]
	}
	var out DType
	switch n.op {
	case "Add", "Sub", "Mul", "Div":
		if len(in) < 2 || in[0] != in[1] {
			return nil, fmt.Errorf("operand types %v differ", in)
		}
		out = first
	case "Shape", "Size":
		out = Int64
	case "ArgMax", "ArgMin":
		res := make([]DType, len(n.out))
		for i := range res {
			res[i] = Int64
		}
		return res, nil
	case "Cast":
		out = DType(attrInt(n, "to", 0))
		if out != Float32 && out != Int64 && out != Int32 {
			return nil, fmt.Errorf("Cast to %v: the Go engine carries float32, int64 and int32 only", out)
		}
	case "Constant", "ConstantOfShape":
		out = Float32
		if a, ok := n.attrs["value"]; ok && a.GetT() != nil {
			out = DType(a.GetT().GetDataType())
		} else if _, ok := n.attrs["value_int"]; ok {
			out = Int64
		} else if _, ok := n.attrs["value_ints"]; ok {
			out = Int64
		}
		if !carried(out) {
			return nil, fmt.Errorf("%s of %v: the Go engine carries float32, int64, int32, int8 and uint8 only", n.op, out)
		}
	case "Concat":
		for _, t := range in {
			if t != first {
				return nil, fmt.Errorf("input types %v differ", in)
			}
		}
		out = first
	default:
		if floatOnly[n.op] {
			out = Float32
		} else {
			out = first
		}
	}
	res := make([]DType, len(n.out))
	for i := range res {
		res[i] = out
	}
	return res, nil
}
