package onnxrt

import (
	"fmt"
	"math"
	"slices"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/tensor"
)

// Graph fusions, applied at load time after constant folding. Each one
// merges a node into its neighbour when the value between them has no
// other reader, so nothing else can observe the difference:
//   - BatchNormalization after Conv: folded into the Conv's weights and bias
//     (as ORT does), one pass instead of two;
//   - Add of a constant row after MatMul: the bias added in place;
//   - the erf form of GELU, x*(1+erf(x/√2))*0.5 (five nodes, as exported by
//     sslzoo and by torch.onnx), as one pass;
//   - Relu after an op that writes a fresh buffer: applied in place, or as
//     oneDNN's post-op for a Conv with constant weights, which runs with
//     its weights packed once (conv_packed.go);
//   - a Transpose that swaps the last two axes feeding MatMul: a transposed
//     GEMM instead of a copy;
//   - Mul and Add by a per-channel (or one-value) constant after Conv:
//     folded into its weights and bias (PP-LCNet's learnable affine);
//   - the hard-swish pattern x*Clip(x+3, 0, 6)/6 (four nodes): one pass;
//   - a transformer's attention core, from the heads' Slices to their
//     merging Reshape: one call (fuse_attention.go).

// graphIndex answers who produces and who reads each value.
type graphIndex struct {
	producer  map[string]*gnode
	readers   map[string][]*gnode
	outputs   map[string]bool
	consts    map[string]*gval
	removed   map[*gnode]bool
	nodeOrder []*gnode
	linear    map[*gnode]*packedLinear // MatMuls given the packed path
	opset     int64
}

func fuse(nodes []*gnode, consts map[string]*gval, outputs map[string]bool, opset int64) []*gnode {
	g := &graphIndex{producer: map[string]*gnode{}, readers: map[string][]*gnode{},
		outputs: outputs, consts: consts, opset: opset, removed: map[*gnode]bool{}, nodeOrder: nodes,
		linear: map[*gnode]*packedLinear{}}
	for _, n := range nodes {
		for _, o := range n.out {
			if o != "" {
				g.producer[o] = n
			}
		}
		for _, in := range n.in {
			if in != "" {
				g.readers[in] = append(g.readers[in], n)
			}
		}
	}
	for _, pass := range []func(*gnode){g.fuseAttention, g.foldBatchNorm, g.foldAffine, g.fuseHardSwish, g.fuseTranspose, g.fuseBias, g.fuseGELU, g.fuseRelu, g.fuseResidual, g.applyEpilogues, withLayouts} {
		for _, n := range nodes {
			if !g.removed[n] {
				pass(n)
			}
		}
	}
	return slices.DeleteFunc(slices.Clone(nodes), func(n *gnode) bool { return g.removed[n] })
}

// private returns the node that produces name when name is read only by
// its one reader and is not a graph output, so the two may be merged.
func (g *graphIndex) private(name string) *gnode {
	if name == "" || g.outputs[name] || len(g.readers[name]) != 1 {
		return nil
	}
	return g.producer[name]
}

// soleReader is the one node that reads name, under the same conditions.
func (g *graphIndex) soleReader(name string) *gnode {
	if g.private(name) == nil {
		return nil
	}
	return g.readers[name][0]
}

// absorb makes p produce what q produced and drops q: q's work now happens
// inside p.
func (g *graphIndex) absorb(p, q *gnode) {
	p.out[0] = q.out[0]
	g.producer[q.out[0]] = p
	g.removed[q] = true
}

// constFloat is the float constant named name, or nil.
func (g *graphIndex) constFloat(name string) *tensor.Tensor {
	if v := g.consts[name]; v != nil && v.f != nil {
		return v.f
	}
	return nil
}

// isScalar reports whether name is a one-element constant within 1e-6 of want.
func (g *graphIndex) isScalar(name string, want float64) bool {
	t := g.constFloat(name)
	return t != nil && len(t.Data) == 1 && math.Abs(float64(t.Data[0])-want) <= 1e-6*math.Abs(want)
}

// other is the input of a two-input node that is not name ("" if neither
// or both are).
func other(n *gnode, name string) string {
	if len(n.in) != 2 {
		return ""
	}
	switch name {
	case n.in[0]:
		if n.in[1] != name {
			return n.in[1]
		}
	case n.in[1]:
		return n.in[0]
	}
	return ""
}

// foldBatchNorm folds an inference BatchNormalization into the Conv before
// it: w' = w·s and b' = (b−mean)·s + β per output channel, s = γ/√(var+ε).
func (g *graphIndex) foldBatchNorm(bn *gnode) {
	if bn.op != "BatchNormalization" || len(bn.in) != 5 {
		return
	}
	conv := g.private(bn.in[0])
	if conv == nil || conv.op != "Conv" || len(conv.in) < 2 {
		return
	}
	w := g.constFloat(conv.in[1])
	if w == nil || len(w.Shape) != 4 {
		return
	}
	o := w.Shape[0]
	var p [4]*tensor.Tensor // scale, bias, mean, var
	for i := range p {
		if p[i] = g.constFloat(bn.in[i+1]); p[i] == nil || len(p[i].Data) != o {
			return
		}
	}
	var b *tensor.Tensor
	if len(conv.in) > 2 && conv.in[2] != "" {
		if b = g.constFloat(conv.in[2]); b == nil || len(b.Data) != o {
			return
		}
	}
	eps := float64(attrFloat(bn, "epsilon", 1e-5))
	nw := &tensor.Tensor{Shape: slices.Clone(w.Shape), Data: make([]float32, len(w.Data))}
	nb := &tensor.Tensor{Shape: []int{o}, Data: make([]float32, o)}
	per := len(w.Data) / o
	for c := range o {
		s := float64(p[0].Data[c]) / math.Sqrt(float64(p[3].Data[c])+eps)
		for k := c * per; k < (c+1)*per; k++ {
			nw.Data[k] = float32(float64(w.Data[k]) * s)
		}
		bias := 0.0
		if b != nil {
			bias = float64(b.Data[c])
		}
		nb.Data[c] = float32((bias-float64(p[2].Data[c]))*s + float64(p[1].Data[c]))
	}
	wName, bName := g.newConst(conv, "bn-weight", nw), g.newConst(conv, "bn-bias", nb)
	conv.in = []string{conv.in[0], wName, bName}
	g.absorb(conv, bn)
}

// foldAffine folds Mul(Conv(x), s) or Add(Conv(x), t), s and t constants
// with one value per output channel (or one for all), into the Conv:
// w' = w·s and b' = b·s, or b' = b + t. A chain (Mul then Add) folds
// step by step, the Conv taking over each output in turn.
func (g *graphIndex) foldAffine(n *gnode) {
	if (n.op != "Mul" && n.op != "Add") || len(n.in) != 2 {
		return
	}
	for _, name := range n.in {
		conv := g.private(name)
		if conv == nil || conv.op != "Conv" || len(conv.in) < 2 {
			continue
		}
		w := g.constFloat(conv.in[1])
		if w == nil || len(w.Shape) != 4 {
			return
		}
		o := w.Shape[0]
		k := g.constFloat(other(n, name))
		per, ok := perChannel(k, o)
		if !ok {
			return
		}
		b := make([]float32, o)
		if len(conv.in) > 2 && conv.in[2] != "" {
			cb := g.constFloat(conv.in[2])
			if cb == nil || len(cb.Data) != o {
				return
			}
			copy(b, cb.Data)
		}
		nw := w
		if n.op == "Mul" {
			nw = &tensor.Tensor{Shape: slices.Clone(w.Shape), Data: slices.Clone(w.Data)}
			size := len(w.Data) / o
			for c := range o {
				for i := c * size; i < (c+1)*size; i++ {
					nw.Data[i] *= per[c]
				}
				b[c] *= per[c]
			}
		} else {
			for c := range o {
				b[c] += per[c]
			}
		}
		wName := conv.in[1]
		if nw != w {
			wName = g.newConst(conv, "scaled-weight-"+n.out[0], nw)
		}
		conv.in = []string{conv.in[0], wName, g.newConst(conv, "affine-bias-"+n.out[0], &tensor.Tensor{Shape: []int{o}, Data: b})}
		g.absorb(conv, n)
		return
	}
}

// perChannel expands k, a constant that broadcasts against a Conv output
// [N, o, H, W] along the channel axis only (one value, or o values shaped
// [o, 1, 1] or [1, o, 1, 1]), into o values.
func perChannel(k *tensor.Tensor, o int) ([]float32, bool) {
	if k == nil || len(k.Shape) > 4 {
		return nil, false
	}
	if len(k.Data) == 1 {
		v := make([]float32, o)
		for i := range v {
			v[i] = k.Data[0]
		}
		return v, true
	}
	// Right-aligned against [N, o, H, W], the o must sit on axis 1.
	for i, d := range k.Shape {
		axis := i + 4 - len(k.Shape)
		if (axis == 1 && d != o) || (axis != 1 && d != 1) {
			return nil, false
		}
	}
	return k.Data, len(k.Data) == o
}

// fuseHardSwish replaces Div(Mul(x, Clip(Add(x, 3), 0, 6)), 6), or the
// same with Mul by 1/6, by one HardSwish pass, starting from the Clip.
func (g *graphIndex) fuseHardSwish(clipN *gnode) {
	if clipN.op != "Clip" || len(clipN.in) == 0 || !g.clipBounds(clipN, 0, 6) {
		return
	}
	add := g.private(clipN.in[0])
	if add == nil || add.op != "Add" || len(add.in) != 2 {
		return
	}
	x := add.in[0]
	if !g.isScalar(add.in[1], 3) {
		if x = add.in[1]; !g.isScalar(add.in[0], 3) {
			return
		}
	}
	mul := g.soleReader(clipN.out[0])
	if mul == nil || mul.op != "Mul" || other(mul, clipN.out[0]) != x {
		return
	}
	scale := g.soleReader(mul.out[0])
	if scale == nil || len(scale.in) != 2 ||
		!(scale.op == "Div" && scale.in[0] == mul.out[0] && g.isScalar(scale.in[1], 6) ||
			scale.op == "Mul" && g.isScalar(other(scale, mul.out[0]), 1.0/6)) {
		return
	}
	for _, n := range []*gnode{add, clipN, mul} {
		g.removed[n] = true
	}
	scale.op, scale.in, scale.attrs = "HardSwish", []string{x}, nil
	scale.impl = hardSwishOp
}

// clipBounds reports whether Clip node n bounds its input to [lo, hi],
// by attributes (opset < 11) or constant inputs.
func (g *graphIndex) clipBounds(n *gnode, lo, hi float64) bool {
	if len(n.in) >= 3 && n.in[1] != "" && n.in[2] != "" {
		return g.isScalar(n.in[1], lo) && g.isScalar(n.in[2], hi)
	}
	if len(n.in) > 1 {
		return false
	}
	return float64(attrFloat(n, "min", float32(math.Inf(-1)))) == lo && float64(attrFloat(n, "max", float32(math.Inf(1)))) == hi
}

// hardSwishOp computes x*Clip(x+3, 0, 6)/6 in the order the four nodes
// it replaces did, so that the result is the same to the bit.
var hardSwishOp = &goOp{run: func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	x, err := float(n, in, 0)
	if err != nil {
		return nil, err
	}
	y := c.tp.Alloc(slices.Clone(x.Value.Shape)...)
	xs := x.Value.Data
	tensor.Parallel(len(xs), 1, func(lo, hi int) { tensor.HardSwish(y.Data[lo:hi], xs[lo:hi]) })
	return []*gval{fl(y)}, nil
}}

// newConst registers a constant made by a fusion under a name no ONNX value
// can have.
func (g *graphIndex) newConst(n *gnode, what string, t *tensor.Tensor) string {
	name := "\x00" + n.name + "/" + what
	g.consts[name] = fl(t)
	return name
}

// fuseBias merges Add(MatMul(a, b), c), c a constant row as long as the
// product's last axis, into the MatMul.
func (g *graphIndex) fuseBias(add *gnode) {
	if add.op != "Add" || len(add.in) != 2 {
		return
	}
	for _, prod := range add.in {
		mm := g.private(prod)
		bias := g.constFloat(other(add, prod))
		if mm == nil || mm.op != "MatMul" || bias == nil || len(bias.Shape) != 1 {
			continue
		}
		if p := g.linear[mm]; p != nil && p.bias == nil && len(bias.Data) == p.wt.Shape[0] {
			p.bias = bias
			g.absorb(mm, add)
			return
		}
		inner := mm.impl
		mm.impl = &goOp{check: inner.check, run: func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
			res, err := inner.run(c, n, in)
			if err != nil {
				return nil, err
			}
			y := res[0].f
			if len(y.Shape) == 0 || y.Shape[len(y.Shape)-1] != len(bias.Data) {
				// Not a row bias for this shape after all: add it the general way.
				return []*gval{fl(c.tp.Add(autograd.Const(y), autograd.Const(bias)).Value)}, nil
			}
			addRows(y.Data, bias.Data)
			return res, nil
		}}
		g.absorb(mm, add)
		return
	}
}

// addRows adds row to every len(row)-long row of y, in place.
func addRows(y, row []float32) {
	n := len(row)
	rows := len(y) / n
	tensor.Parallel(rows, n, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			dst := y[r*n : (r+1)*n]
			for i, v := range row {
				dst[i] += v
			}
		}
	})
}

// fuseGELU replaces Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), 0.5) by one GELU,
// starting from the Erf.
func (g *graphIndex) fuseGELU(erf *gnode) {
	if erf.op != "Erf" || len(erf.in) != 1 {
		return
	}
	div := g.private(erf.in[0])
	if div == nil || div.op != "Div" || len(div.in) != 2 || !g.isScalar(div.in[1], math.Sqrt2) {
		return
	}
	x := div.in[0]
	add := g.soleReader(erf.out[0])
	if add == nil || add.op != "Add" || !g.isScalar(other(add, erf.out[0]), 1) {
		return
	}
	mul := g.soleReader(add.out[0])
	if mul == nil || mul.op != "Mul" || other(mul, add.out[0]) != x {
		return
	}
	half := g.soleReader(mul.out[0])
	if half == nil || half.op != "Mul" || !g.isScalar(other(half, mul.out[0]), 0.5) {
		return
	}
	for _, n := range []*gnode{div, erf, add, mul} {
		g.removed[n] = true
	}
	half.op, half.in = "Gelu", []string{x}
	half.impl = geluOp
	g.geluIntoLinear(half, x)
}

// geluIntoLinear moves a GELU into the packed MatMul that produces its
// input x, when the GELU (whose pattern's other nodes are gone) is x's
// only reader: oneDNN applies it as a post-op in the product's own pass.
func (g *graphIndex) geluIntoLinear(gelu *gnode, x string) {
	if g.outputs[x] {
		return
	}
	for _, r := range g.readers[x] {
		if !g.removed[r] {
			return
		}
	}
	mm := g.producer[x]
	if p := g.linear[mm]; p != nil && p.post == 0 {
		p.post = tensor.PostGELU
		g.absorb(mm, gelu)
	}
}

// geluOp is the exact GELU on tensor.GELUErf's vectorised kernel, or on
// autograd's where that kernel is not built in.
var geluOp = &goOp{run: func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	x, err := float(n, in, 0)
	if err != nil {
		return nil, err
	}
	if !tensor.GELUErf(nil, nil) { // the kernel is not built in
		return fv(c.tp.GELU(x)), nil
	}
	y := c.tp.Alloc(slices.Clone(x.Value.Shape)...)
	xs := x.Value.Data
	tensor.Parallel(len(xs), 8, func(lo, hi int) { tensor.GELUErf(y.Data[lo:hi], xs[lo:hi]) })
	return []*gval{fl(y)}, nil
}}

// freshOutput lists the ops whose first output is always a buffer they
// allocated, so an epilogue may overwrite it.
var freshOutput = map[string]bool{"Conv": true, "ConvTranspose": true, "MatMul": true, "Gemm": true,
	"Add": true, "Sub": true, "BatchNormalization": true}

// fuseRelu marks a Relu's input producer, when its output is fresh, to
// apply the Relu itself (see applyEpilogues).
func (g *graphIndex) fuseRelu(relu *gnode) {
	if relu.op != "Relu" || len(relu.in) != 1 {
		return
	}
	p := g.private(relu.in[0])
	if p == nil || !freshOutput[p.op] || len(p.out) != 1 || p.relu {
		return
	}
	p.relu = true
	g.absorb(p, relu)
}

// packable reports whether n is a Conv that will run packed: 2-D, with
// constant weights.
func (g *graphIndex) packable(n *gnode) bool {
	if n.op != "Conv" || len(n.in) < 2 {
		return false
	}
	w := g.constFloat(n.in[1])
	return w != nil && len(w.Shape) == 4
}

// fuseResidual merges Add(Conv(x), r), a ResNet block's shortcut, and the
// Relu fused after the Add, into the Conv as oneDNN's sum post-op: the
// Conv accumulates onto r. The merged node takes the Add's place in the
// order, since r (a downsampling branch) may be computed after the Conv.
func (g *graphIndex) fuseResidual(add *gnode) {
	if add.op != "Add" || len(add.in) != 2 || add.in[0] == add.in[1] {
		return
	}
	for i, name := range add.in {
		conv := g.private(name)
		if conv == nil || !g.packable(conv) || conv.relu || conv.sum || len(conv.in) > 3 {
			continue
		}
		fused := *conv
		fused.in = append(slices.Clone(conv.in), "", "")[:4]
		fused.in[3] = add.in[1-i]
		fused.out = add.out
		fused.relu, fused.sum = add.relu, true
		g.removed[conv] = true
		*add = fused
		g.producer[add.out[0]] = add
		return
	}
}

// applyEpilogues gives each node its final kernel: a Conv with constant
// weights runs packed (conv_packed.go), with its residual sum and its Relu
// as oneDNN post-ops; any other node marked relu applies it in place after
// its own kernel.
func (g *graphIndex) applyEpilogues(n *gnode) {
	if g.packable(n) {
		var post tensor.ConvPost
		if n.relu {
			post |= tensor.PostRelu
		}
		if n.sum {
			post |= tensor.PostSum
		}
		n.impl = packedConvOp(g.constFloat(n.in[1]), post)
		return
	}
	if n.relu {
		n.impl = withRelu(n.impl)
	}
}

// withRelu runs op, then a Relu in place on its first output.
func withRelu(op *goOp) *goOp {
	return &goOp{check: op.check, run: func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
		res, err := op.run(c, n, in)
		if err != nil || res[0].f == nil {
			return res, err
		}
		reluInPlace(res[0].f.Data)
		return res, nil
	}}
}

func reluInPlace(y []float32) {
	tensor.Parallel(len(y), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			// Like ReLU, NaN stays NaN: only negatives are cleared.
			if y[i] < 0 {
				y[i] = 0
			}
		}
	})
}

// fuseTranspose turns MatMul(a, Transpose(b)) with a perm that swaps only
// the last two axes into a GEMM that reads b transposed (and likewise for a).
func (g *graphIndex) fuseTranspose(mm *gnode) {
	if mm.op != "MatMul" || len(mm.in) != 2 || mm.in[0] == mm.in[1] {
		return
	}
	var trans [2]int // rank of each operand read transposed; 0 for none
	for i, name := range mm.in {
		t := g.private(name)
		if t == nil || t.op != "Transpose" || len(t.in) != 1 {
			continue
		}
		perm, ok := attrInts(t, "perm")
		if !ok || !swapsLastTwo(perm) {
			continue
		}
		trans[i] = len(perm)
		mm.in[i] = t.in[0]
		g.removed[t] = true
	}
	if trans != [2]int{} {
		mm.impl = transposedMatMul(trans)
	}
	g.packLinear(mm, trans)
}

// transposedMatMul is MatMul on operands read transposed on their last two
// axes (those whose rank trans gives: the Transpose's perm length, which it
// would have checked), as one GEMM where the engine's MatMulT takes the
// shapes, and as a copy then MatMul otherwise.
func transposedMatMul(trans [2]int) *goOp {
	return &goOp{run: func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
		a, err := float(n, in, 0)
		if err != nil {
			return nil, err
		}
		b, err := float(n, in, 1)
		if err != nil {
			return nil, err
		}
		as, bs := a.Value.Shape, b.Value.Shape
		for i, s := range [][]int{as, bs} {
			if trans[i] != 0 && len(s) != trans[i] {
				return nil, fmt.Errorf("Transpose of input %d: perm has %d axes, the tensor %v", i, trans[i], s)
			}
		}
		if len(as) >= 2 && len(bs) >= 2 && (len(bs) == 2 || slices.Equal(as[:len(as)-2], bs[:len(bs)-2])) {
			return fv(c.tp.MatMulT(a, b, trans[0] != 0, trans[1] != 0)), nil
		}
		args := []*gval{fl(a.Value), fl(b.Value)}
		for i, v := range []*autograd.Var{a, b} {
			if r := trans[i]; r != 0 {
				perm := make([]int, r)
				for k := range perm {
					perm[k] = k
				}
				perm[r-2], perm[r-1] = r-1, r-2
				args[i] = fl(c.tp.Transpose(v, perm...).Value)
			}
		}
		return matMul(c, n, args)
	}}
}

func swapsLastTwo(perm []int) bool {
	r := len(perm)
	if r < 2 || perm[r-2] != r-1 || perm[r-1] != r-2 {
		return false
	}
	for i := range r - 2 {
		if perm[i] != i {
			return false
		}
	}
	return true
}
