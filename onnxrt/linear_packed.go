package onnxrt

import (
	"sync"

	"github.com/sslzoo/sslzoo/tensor"
)

// packedLinear runs MatMul(a, wt^T) (+ bias), wt a constant N×K matrix
// (the weights of a Linear layer as PyTorch stores them), as a 1x1
// convolution over a's rows, with wt packed into oneDNN's layout once: a
// is an NHWC image of one column, K channels and as many rows as a has,
// and the product comes out as its N-channel NHWC output, which is the
// row-major result; wt is already the convolution's OIHW weights, and the
// bias and a following GELU ride in the same pass.
//
// dnnl_sgemm repacks its operand at every call and the bias was a second
// pass over the output. ViT-tiny's Linear layers at batch 64 (12608 rows)
// took 43 ms a block this way against 47 for the GEMMs alone; at batch 1
// (197 rows) the whole model ran in 18.0 ms against 22.3 with the split
// dnnl_sgemm (ORT 14.2, one interleaved run), so every size takes it.
// Empty inputs, inputs whose last axis is not K, or no oneDNN run the plain
// MatMul (inner), then add the bias and apply the GELU.
type packedLinear struct {
	wt     *tensor.Tensor
	bias   *tensor.Tensor  // nil until fuseBias hands one over
	post   tensor.ConvPost // PostGELU once geluIntoLinear moves one in
	inner  *goOp
	once   sync.Once
	packed *tensor.PackedConv
}

const linearLayout = tensor.SrcNHWC | tensor.DstNHWC

func (p *packedLinear) geom(rows int) tensor.ConvGeom {
	return tensor.ConvGeom{N: 1, C: p.wt.Shape[1], H: rows, W: 1, O: p.wt.Shape[0], KH: 1, KW: 1}
}

func (p *packedLinear) op() *goOp {
	return &goOp{check: p.inner.check, run: p.run}
}

func (p *packedLinear) run(c *gctx, node *gnode, in []*gval) ([]*gval, error) {
	k := p.wt.Shape[1]
	a, err := float(node, in, 0)
	if err != nil {
		return nil, err
	}
	as := a.Value.Shape
	if len(as) >= 2 && as[len(as)-1] == k {
		if rows := tensor.Numel(as[:len(as)-1]); rows > 0 {
			if y := p.forward(c, a.Value, rows); y != nil {
				return []*gval{fl(y)}, nil
			}
		}
	}
	res, err := p.inner.run(c, node, in)
	if err != nil {
		return res, err
	}
	if p.bias != nil {
		// The shapes were checked by the plain MatMul: its last axis is n.
		addRows(res[0].f.Data, p.bias.Data)
	}
	if p.post == tensor.PostGELU {
		return geluOp.run(c, node, res)
	}
	return res, nil
}

// forward is the packed convolution, or nil where oneDNN cannot run it.
func (p *packedLinear) forward(c *gctx, a *tensor.Tensor, rows int) *tensor.Tensor {
	p.once.Do(func() { p.packed = tensor.PackConv(p.geom(rows), p.wt.Data, p.bias != nil, p.post, linearLayout) })
	if p.packed == nil {
		return nil
	}
	var bias []float32
	if p.bias != nil {
		bias = p.bias.Data
	}
	out := append(append([]int(nil), a.Shape[:len(a.Shape)-1]...), p.wt.Shape[0])
	y := c.tp.Alloc(out...)
	if !p.packed.Forward(p.geom(rows), a.Data, bias, y.Data, linearLayout) {
		c.tp.Recycle(y.Data)
		return nil
	}
	return y
}

// packLinear gives a MatMul by a 2-D constant the packed path: one that
// fuseTranspose made read its constant right operand transposed, or one
// whose right operand is a constant as it stands (transposed once here).
func (g *graphIndex) packLinear(mm *gnode, trans [2]int) {
	if mm.op != "MatMul" || len(mm.in) != 2 || trans[0] != 0 || g.constFloat(mm.in[0]) != nil {
		return
	}
	w := g.constFloat(mm.in[1])
	if w == nil || len(w.Shape) != 2 || len(w.Data) == 0 {
		return
	}
	if trans[1] == 0 {
		// K×N to N×K: one "image" of K channels and N pixels, to NHWC.
		k, n := w.Shape[0], w.Shape[1]
		wt := tensor.New(n, k)
		tensor.NCHWToNHWC(wt.Data, w.Data, 1, k, n)
		w = wt
	}
	p := &packedLinear{wt: w, inner: mm.impl}
	g.linear[mm] = p
	mm.impl = p.op()
}
