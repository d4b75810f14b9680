package onnxrt

import (
	"sync"

	"github.com/sslzoo/sslzoo/tensor"
)

// packedConvOp runs a Conv whose weights w are a constant through
// tensor.PackedConv: the weights are reordered into oneDNN's layout once,
// at the first Run, instead of at every call, and a fused Relu is a
// post-op. Whatever the packed path cannot take (asymmetric padding,
// shapes that do not fit the weights, no oneDNN) runs the general Conv.
func packedConvOp(w *tensor.Tensor, relu bool) *goOp {
	var (
		mu     sync.Mutex
		packed *tensor.PackedConv
		tried  bool
	)
	pack := func(g tensor.ConvGeom, bias bool) *tensor.PackedConv {
		mu.Lock()
		defer mu.Unlock()
		if !tried {
			tried = true
			packed = tensor.PackConv(g, w.Data, bias, relu)
		}
		return packed
	}
	general := func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
		res, err := conv(c, n, in)
		if err == nil && relu {
			reluInPlace(res[0].f.Data)
		}
		return res, err
	}
	return &goOp{check: checkConv, run: func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
		x, _, b, err := weightedInputs(n, in)
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
		pc := pack(g, b != nil)
		if pc == nil {
			return general(c, n, in)
		}
		var bias []float32
		if b != nil {
			bias = b.Value.Data
		}
		y := c.tp.Alloc(g.N, g.O, g.OutH(), g.OutW())
		if !pc.Forward(g, x.Value.Data, bias, y.Data) {
			c.tp.Recycle(y.Data)
			return general(c, n, in)
		}
		return []*gval{fl(y)}, nil
	}}
}
