package autograd

import "github.com/sslzoo/sslzoo/tensor"

// poolGeom validates a square pooling window over x [N,C,H,W].
func poolGeom(op string, x *Var, kernel, stride, pad int) tensor.PoolGeom {
	s := x.Value.Shape
	if len(s) != 4 {
		Failf(op, "x shape %v is not 4-D [N,C,H,W]", s)
	}
	g := tensor.PoolGeom{N: s[0], C: s[1], H: s[2], W: s[3], KH: kernel, KW: kernel,
		StrideH: stride, StrideW: stride, PadH: pad, PadW: pad}
	if err := g.Validate(); err != nil {
		Failf(op, "x shape %v, kernel %d, stride %d, pad %d: %v", s, kernel, stride, pad, err)
	}
	return g
}

func poolAttrs(g tensor.PoolGeom) map[string]any {
	return map[string]any{
		"kernel_shape": []int{g.KH, g.KW},
		"strides":      []int{g.StrideH, g.StrideW},
		"pads":         []int{g.PadH, g.PadW, g.PadH, g.PadW},
		"ceil_mode":    0,
	}
}

// MaxPool2d is torch.nn.functional.max_pool2d(x, kernel, stride, pad) on
// x [N,C,H,W] (floor output size, padding never wins). The gradient goes to
// the first maximum of each window, as in PyTorch.
func (tp *Tape) MaxPool2d(x *Var, kernel, stride, pad int) *Var {
	g := poolGeom("MaxPool2d", x, kernel, stride, pad)
	out := tp.Alloc(g.N, g.C, g.OutH(), g.OutW())
	// The workspace (argmax) lives in a buffer of the tape's, so that it
	// is recycled with the step like everything else.
	ws := tp.Alloc(tensor.MaxPoolWorkspaceLen(g))
	tensor.MaxPoolForward(g, x.Value.Data, out.Data, ws.Data)
	return tp.Record("MaxPool2d", poolAttrs(g), out, []*Var{x}, func(o *Var) {
		if x.requiresGrad {
			fresh := x.Grad == nil // GradOf zeroes a new buffer: overwrite it
			tensor.MaxPoolBackward(g, o.Grad.Data, ws.Data, tp.GradOf(x).Data, !fresh)
		}
	})
}

// AvgPool2d is torch.nn.functional.avg_pool2d(x, kernel, stride, pad) with
// PyTorch's defaults: floor output size, padding counted in the divisor
// (count_include_pad=True).
func (tp *Tape) AvgPool2d(x *Var, kernel, stride, pad int) *Var {
	g := poolGeom("AvgPool2d", x, kernel, stride, pad)
	out := tp.Alloc(g.N, g.C, g.OutH(), g.OutW())
	tensor.AvgPoolForward(g, x.Value.Data, out.Data)
	attrs := poolAttrs(g)
	attrs["count_include_pad"] = 1
	return tp.Record("AvgPool2d", attrs, out, []*Var{x}, func(o *Var) {
		if x.requiresGrad {
			fresh := x.Grad == nil
			tensor.AvgPoolBackward(g, o.Grad.Data, tp.GradOf(x).Data, !fresh)
		}
	})
}

// GlobalAvgPool averages x [N,C,H,W] over its spatial axes to [N,C]
// (ONNX GlobalAveragePool followed by a flatten to 2-D).
func (tp *Tape) GlobalAvgPool(x *Var) *Var {
	s := x.Value.Shape
	if len(s) != 4 {
		Failf("GlobalAvgPool", "x shape %v is not 4-D [N,C,H,W]", s)
	}
	if s[2]*s[3] == 0 {
		Failf("GlobalAvgPool", "x shape %v has no spatial extent", s)
	}
	planes, hw := s[0]*s[1], s[2]*s[3]
	out := tp.Alloc(s[0], s[1])
	tensor.GlobalAvgPoolForward(planes, hw, x.Value.Data, out.Data)
	return tp.Record("GlobalAvgPool", map[string]any{"flatten": true}, out, []*Var{x}, func(o *Var) {
		if gx := tp.GradOf(x); gx != nil {
			tensor.GlobalAvgPoolBackward(planes, hw, o.Grad.Data, gx.Data)
		}
	})
}
