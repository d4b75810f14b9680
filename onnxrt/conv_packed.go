package onnxrt

import (
	"fmt"
	"slices"
	"sync"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/tensor"
)

// packedConvOp runs a Conv whose weights w are a constant through
// tensor.PackedConv: the weights are reordered into oneDNN's layout once,
// at the first Run, instead of at every call; the output is NHWC (see
// layout.go), and the post-ops of post run in the same pass. With
// tensor.PostSum the node has a fourth input, the residual the Conv's
// output was added to (fuseResidual), written into the output buffer
// first, or taken over as the output buffer when this is its last reader.
// Whatever the packed path cannot take (asymmetric padding, shapes that
// do not fit the weights, a residual of another shape, no oneDNN) runs the
// general Conv on NCHW copies, then the Add and the Relu.
func packedConvOp(w *tensor.Tensor, post tensor.ConvPost) *goOp {
	var (
		mu     sync.Mutex
		packed *tensor.PackedConv
		tried  bool
	)
	pack := func(g tensor.ConvGeom, bias bool, layout tensor.ConvLayout) *tensor.PackedConv {
		mu.Lock()
		defer mu.Unlock()
		if !tried {
			tried = true
			packed = tensor.PackConv(g, w.Data, bias, post, layout)
		}
		return packed
	}
	sum := post&tensor.PostSum != 0
	general := func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
		plain := make([]*gval, len(in))
		for i, v := range in {
			plain[i] = toNCHW(c, v)
		}
		res, err := conv(c, n, plain[:min(len(plain), 3)])
		if err != nil {
			return nil, err
		}
		if sum {
			r, err := float(n, plain, 3)
			if err != nil {
				return nil, err
			}
			res = []*gval{fl(c.tp.Add(autograd.Const(res[0].f), r).Value)}
		}
		if post&tensor.PostRelu != 0 {
			reluInPlace(res[0].f.Data)
		}
		return res, nil
	}
	return &goOp{check: checkConv, nhwc: func([]*gval) bool { return true }, run: func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
		x, _, b, err := weightedInputs(n, in[:min(len(in), 3)])
		if err != nil {
			return nil, err
		}
		xs, ws := x.Value.Shape, w.Shape
		p, pad, err := convSetup(n, xs, ws)
		if err != nil || pad[0] != pad[2] || pad[1] != pad[3] || p.Groups < 1 || ws[1]*p.Groups != xs[1] ||
			(b != nil && len(b.Value.Data) != ws[0]) {
			return general(c, n, in)
		}
		g := tensor.ConvGeom{N: xs[0], C: xs[1], H: xs[2], W: xs[3], O: ws[0], KH: ws[2], KW: ws[3],
			StrideH: p.StrideH, StrideW: p.StrideW, PadH: p.PadH, PadW: p.PadW,
			DilationH: p.DilationH, DilationW: p.DilationW, Groups: p.Groups}
		if g.Validate() != nil {
			return general(c, n, in)
		}
		outShape := []int{g.N, g.O, g.OutH(), g.OutW()}
		var res *gval
		if sum {
			if len(in) < 4 || in[3] == nil || in[3].f == nil {
				return nil, fmt.Errorf("the fused residual input is missing")
			}
			if res = in[3]; !slices.Equal(res.f.Shape, outShape) {
				return general(c, n, in) // a broadcast Add: not a sum post-op
			}
		}
		layout := tensor.DstNHWC
		if in[0].nhwc {
			layout |= tensor.SrcNHWC
		}
		pc := pack(g, b != nil, layout)
		if pc == nil {
			return general(c, n, in)
		}
		var bias []float32
		if b != nil {
			bias = b.Value.Data
		}
		var y *tensor.Tensor
		switch {
		case sum && res.nhwc && len(c.dying) > 3 && c.dying[3]:
			y = res.f // the residual's last reader: accumulate into it
		case sum:
			y = c.tp.Alloc(outShape...)
			toNHWC(y.Data, res)
		default:
			y = c.tp.Alloc(outShape...)
		}
		if !pc.Forward(g, x.Value.Data, bias, y.Data, layout) {
			if res == nil || y != res.f {
				c.tp.Recycle(y.Data)
			}
			return general(c, n, in)
		}
		return []*gval{{f: y, nhwc: true}}, nil
	}}
}
