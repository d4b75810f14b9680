package onnxrt

import (
	"fmt"
	"slices"

	"github.com/sslzoo/sslzoo/autograd"
)

// The attention fusion: a transformer block's core as exported by sslzoo
// (and by torch.onnx for the same module code),
//
//	q, k, v = Slice(x, 0:C), Slice(x, C:2C), Slice(x, 2C:3C)   (optional)
//	q = Mul(q, s)                                               (optional)
//	each = Transpose(Reshape(·, [B, N, H, D]), perm 0 2 1 3)
//	y = MatMul(Softmax(MatMul(q, Transpose(k, 0 1 3 2)) [·s] [+ mask]), v)
//	out = Reshape(Transpose(y, perm 0 2 1 3), [B, N, H·D])
//
// (k may also be Transpose(Reshape(·), perm 0 2 3 1) in one step, as
// torch.onnx writes it; the mask is any float tensor that broadcasts to
// the scores, such as BERT's [B, 1, 1, N] padding bias) about sixteen
// nodes, becomes one call of autograd.Attention that reads
// the heads where the projection wrote them. ViT-tiny at batch 1 spent
// about 3 ms of its 16 in those nodes' copies and in products too small to
// split over the cores.

// headSource is where one operand's heads come from: columns off onward
// of a [B, N, ·] tensor, split into heads of dim each.
type headSource struct {
	name       string
	off        int
	heads, dim int
	scale      float32
	reshape    []int64 // the split's target, checked against B and N at run time
	nodes      []*gnode
}

// attentionSpec is what the fused node needs at run time.
type attentionSpec struct {
	q, k, v headSource
	merge   []int64 // the final Reshape's target
	scale   float32
}

// fuseAttention matches the pattern above from its Softmax.
func (g *graphIndex) fuseAttention(sm *gnode) {
	if sm.op != "Softmax" || len(sm.in) != 1 {
		return
	}
	defAxis := 1 // before opset 13
	if g.opset >= 13 {
		defAxis = -1
	}
	if axis := attrInt(sm, "axis", defAxis); axis != -1 && axis != 3 {
		return
	}
	if add := g.private(sm.in[0]); add != nil && add.op == "Add" && len(add.in) == 2 && add.in[0] != add.in[1] {
		// Either operand may be the mask: try each as the scores.
		for i := range 2 {
			if g.fuseAttentionFrom(sm, add.in[i], add.in[1-i], add) {
				return
			}
		}
		return
	}
	g.fuseAttentionFrom(sm, sm.in[0], "", nil)
}

// fuseAttentionFrom matches the rest of the pattern, from the (possibly
// scaled) scores up, with mask added by add (none when mask is ""), and
// fuses it when it all matches.
func (g *graphIndex) fuseAttentionFrom(sm *gnode, scoresName, mask string, add *gnode) bool {
	scale := float32(1)
	var extra []*gnode
	if add != nil {
		extra = append(extra, add)
	}
	scores := g.private(scoresName)
	if scores != nil && (scores.op == "Mul" || scores.op == "Div") && len(scores.in) == 2 {
		s := g.constFloat(scores.in[1])
		if s == nil || len(s.Data) != 1 || s.Data[0] == 0 {
			return false
		}
		scale = s.Data[0]
		if scores.op == "Div" {
			scale = 1 / scale
		}
		extra = append(extra, scores)
		scores = g.private(scores.in[0])
	}
	if scores == nil || scores.op != "MatMul" || len(scores.in) != 2 {
		return false
	}
	q, ok := g.headsOf(scores.in[0])
	if !ok {
		return false
	}
	k, kt, ok := g.keysOf(scores.in[1])
	if !ok {
		return false
	}
	mm := g.soleReader(sm.out[0])
	if mm == nil || mm.op != "MatMul" || len(mm.in) != 2 || mm.in[0] != sm.out[0] {
		return false
	}
	v, ok := g.headsOf(mm.in[1])
	if !ok || v.scale != 1 || q.heads != k.heads || q.heads != v.heads || q.dim != k.dim || q.dim != v.dim {
		return false
	}
	back := g.soleReader(mm.out[0])
	if back == nil || !isPerm0213(back) {
		return false
	}
	merge := g.soleReader(back.out[0])
	target, ok := g.reshapeTarget(merge)
	if !ok || len(target) != 3 || (target[2] != int64(q.heads*q.dim) && target[2] != -1) {
		return false
	}
	spec := &attentionSpec{q: q, k: k, v: v, merge: target, scale: scale * q.scale * k.scale}
	for _, n := range slices.Concat(q.nodes, k.nodes, v.nodes, extra, kt, []*gnode{scores, sm, mm, back}) {
		g.removed[n] = true
	}
	// The fused node takes the last node's place: each value it reads was
	// computed before some node of the pattern read it.
	in := []string{q.name, k.name, v.name}
	if mask != "" {
		in = append(in, mask)
	}
	*merge = gnode{op: "Attention", name: merge.name, in: in, out: merge.out, impl: attentionOp(spec)}
	g.producer[merge.out[0]] = merge
	return true
}

// keysOf follows the transposed keys back to their source: either
// Transpose(heads, 0 1 3 2) of what headsOf follows, or the one Transpose
// (0 2 3 1) that torch.onnx merges the two into. kt is the extra node.
func (g *graphIndex) keysOf(name string) (headSource, []*gnode, bool) {
	t := g.private(name)
	if t == nil || t.op != "Transpose" || len(t.in) != 1 {
		return headSource{}, nil, false
	}
	perm, _ := attrInts(t, "perm")
	switch {
	case slices.Equal(perm, []int{0, 1, 3, 2}):
		k, ok := g.headsOf(t.in[0])
		return k, []*gnode{t}, ok
	case slices.Equal(perm, []int{0, 2, 3, 1}):
		k, ok := g.splitOf(t)
		return k, nil, ok
	}
	return headSource{}, nil, false
}

// headsOf follows Transpose(Reshape([Mul(] [Slice(] x [)] [, s)], [B, N, H, D]), 0 2 1 3)
// back to x.
func (g *graphIndex) headsOf(name string) (headSource, bool) {
	t := g.private(name)
	if t == nil || !isPerm0213(t) {
		return headSource{}, false
	}
	return g.splitOf(t)
}

// splitOf follows the head split below the Transpose t (which the caller
// has matched) back to its source.
func (g *graphIndex) splitOf(t *gnode) (headSource, bool) {
	r := g.private(t.in[0])
	target, ok := g.reshapeTarget(r)
	if !ok || len(target) != 4 || target[2] <= 0 || target[3] <= 0 {
		return headSource{}, false
	}
	h := headSource{name: r.in[0], heads: int(target[2]), dim: int(target[3]), scale: 1,
		reshape: target, nodes: []*gnode{t, r}}
	if m := g.private(h.name); m != nil && m.op == "Mul" && len(m.in) == 2 {
		if s := g.constFloat(m.in[1]); s != nil && len(s.Data) == 1 {
			h.scale, h.name = s.Data[0], m.in[0]
			h.nodes = append(h.nodes, m)
		}
	}
	if s := g.private(h.name); s != nil && s.op == "Slice" {
		start, ok := g.lastAxisSlice(s, h.heads*h.dim)
		if !ok {
			return headSource{}, false
		}
		h.name, h.off = s.in[0], start
		h.nodes = append(h.nodes, s)
	}
	return h, true
}

// lastAxisSlice is the start of a Slice of width columns along the last
// axis of a rank-3 tensor, step 1, with constant bounds.
func (g *graphIndex) lastAxisSlice(s *gnode, width int) (int, bool) {
	if len(s.in) < 4 || len(s.in) > 5 {
		return 0, false
	}
	var v [4][]int64 // starts, ends, axes, steps
	for i := range v {
		if i+1 >= len(s.in) {
			v[i] = []int64{1}
			continue
		}
		c := g.consts[s.in[i+1]]
		if c == nil || c.i == nil || len(c.i.data) != 1 {
			return 0, false
		}
		v[i] = c.i.data
	}
	start, end, axis, step := v[0][0], v[1][0], v[2][0], v[3][0]
	if (axis != 2 && axis != -1) || step != 1 || start < 0 || end-start != int64(width) {
		return 0, false
	}
	return int(start), true
}

// reshapeTarget is a Reshape's constant target shape, when n is one that
// does not take zeros literally.
func (g *graphIndex) reshapeTarget(n *gnode) ([]int64, bool) {
	if n == nil || n.op != "Reshape" || len(n.in) != 2 || attrInt(n, "allowzero", 0) != 0 {
		return nil, false
	}
	c := g.consts[n.in[1]]
	if c == nil || c.i == nil {
		return nil, false
	}
	return c.i.data, true
}

func isPerm0213(n *gnode) bool {
	if n.op != "Transpose" || len(n.in) != 1 {
		return false
	}
	perm, ok := attrInts(n, "perm")
	return ok && slices.Equal(perm, []int{0, 2, 1, 3})
}

// leadsWith reports whether Reshape's target keeps the leading axes b and
// n of a [b, n, rest] input (0 copies an axis; one -1 is inferred from
// the rest), the condition for the fusion to compute what the Reshapes
// would have.
func leadsWith(target []int64, b, n int) bool {
	lead := [2]int{b, n}
	infer := -1
	for i := range 2 {
		switch t := target[i]; {
		case t == 0 || t == int64(lead[i]):
		case t == -1 && infer < 0:
			infer = i
		default:
			return false
		}
	}
	for _, t := range target[2:] {
		if t == -1 && infer >= 0 {
			return false
		}
	}
	return true
}

func attentionOp(s *attentionSpec) *goOp {
	return &goOp{run: func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
		var x [3]*autograd.Var // q, k and v's sources; in[3] is the mask
		for i := range x {
			v, err := float(n, in, i)
			if err != nil {
				return nil, err
			}
			x[i] = v
		}
		qs := x[0].Value.Shape
		if len(qs) != 3 {
			return nil, fmt.Errorf("fused attention: the query source is %v, want [batch, tokens, features]", qs)
		}
		b, tokens := qs[0], qs[1]
		width := s.q.heads * s.q.dim
		for i, h := range []headSource{s.q, s.k, s.v} {
			sh := x[i].Value.Shape
			if len(sh) != 3 || sh[0] != b || sh[1] != tokens || sh[2] < h.off+width {
				return nil, fmt.Errorf("fused attention: source %q is %v, want [%d %d ≥%d]", h.name, sh, b, tokens, h.off+width)
			}
			if !leadsWith(h.reshape, b, tokens) {
				return nil, fmt.Errorf("fused attention: Reshape to %v does not split [%d %d %d] into heads", h.reshape, b, tokens, width)
			}
		}
		if !leadsWith(s.merge, b, tokens) {
			return nil, fmt.Errorf("fused attention: Reshape to %v does not merge [%d %d %d %d]", s.merge, b, tokens, s.q.heads, s.q.dim)
		}
		l := autograd.HeadLayout{
			Batch: b, Tokens: tokens, Heads: s.q.heads, HeadDim: s.q.dim,
			QStride: qs[2], KStride: x[1].Value.Shape[2], VStride: x[2].Value.Shape[2],
			QOff: s.q.off, KOff: s.k.off, VOff: s.v.off, OutStride: width, Scale: s.scale,
		}
		if len(in) > 3 {
			m, err := float(n, in, 3)
			if err != nil {
				return nil, err
			}
			if l.Mask, err = autograd.BroadcastMask(m.Value, l); err != nil {
				return nil, fmt.Errorf("fused attention: %w", err)
			}
		}
		out := c.tp.Alloc(b, tokens, width)
		err := autograd.Attention(out.Data, x[0].Value.Data, x[1].Value.Data, x[2].Value.Data, l)
		if err != nil {
			return nil, err
		}
		return []*gval{fl(out)}, nil
	}}
}
