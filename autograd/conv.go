package autograd

import (
	"fmt"

	"github.com/sslzoo/sslzoo/tensor"
)

// ConvParams are a 2-D convolution's hyper-parameters. Zero Stride,
// Dilation and Groups mean 1; padding is symmetric (PyTorch's padding=(PadH, PadW)).
type ConvParams struct {
	StrideH, StrideW     int
	PadH, PadW           int
	DilationH, DilationW int
	Groups               int
	// Exact keeps oneDNN to direct convolutions. Otherwise, under
	// SSLZOO_WINOGRAD=1, a 3x3 stride-1 convolution may use Winograd's
	// algorithm, faster with a larger rounding error (see
	// tensor.ConvGeom.Winograd): a choice for training, never for an
	// inference engine held to another's output.
	Exact bool
}

// Conv2d is torch.nn.functional.conv2d: x [N,C,H,W], w [O, C/Groups, KH, KW],
// b [O] or nil, output [N, O, OutH, OutW]. The kernels are oneDNN's when it
// is available, else im2col + GEMM (see tensor.ConvBackend).
//
// The recorded attributes are ONNX Conv's: strides, pads (begin and end per
// axis), dilations, group, kernel_shape, plus has_bias. Inputs are x, w and,
// when present, b.
func (tp *Tape) Conv2d(x, w, b *Var, p ConvParams) *Var {
	xs, ws := x.Value.Shape, w.Value.Shape
	if len(xs) != 4 {
		Failf("Conv2d", "x shape %v is not 4-D [N,C,H,W]", xs)
	}
	if len(ws) != 4 {
		Failf("Conv2d", "weight shape %v is not 4-D [O,C/groups,KH,KW]", ws)
	}
	g := tensor.ConvGeom{
		N: xs[0], C: xs[1], H: xs[2], W: xs[3], O: ws[0], KH: ws[2], KW: ws[3],
		StrideH: or1(p.StrideH), StrideW: or1(p.StrideW), PadH: p.PadH, PadW: p.PadW,
		DilationH: or1(p.DilationH), DilationW: or1(p.DilationW), Groups: or1(p.Groups),
		Winograd: !p.Exact,
	}
	if g.Groups > 0 && ws[1]*g.Groups != g.C {
		Failf("Conv2d", "weight shape %v with %d groups expects %d input channels, x shape %v has %d", ws, g.Groups, ws[1]*g.Groups, xs, g.C)
	}
	if err := g.Validate(); err != nil {
		Failf("Conv2d", "x shape %v, weight shape %v, %+v: %v", xs, ws, p, err)
	}
	var bd []float32
	inputs := []*Var{x, w}
	if b != nil {
		if len(b.Value.Shape) != 1 || b.Value.Shape[0] != g.O {
			Failf("Conv2d", "bias shape %v for %d output channels: need [%d]", b.Value.Shape, g.O, g.O)
		}
		bd = b.Value.Data
		inputs = append(inputs, b)
	}
	out := tp.Alloc(g.N, g.O, g.OutH(), g.OutW())
	tensor.ConvForward(g, x.Value.Data, w.Value.Data, bd, out.Data)
	attrs := map[string]any{
		"strides":      []int{g.StrideH, g.StrideW},
		"pads":         []int{g.PadH, g.PadW, g.PadH, g.PadW},
		"dilations":    []int{g.DilationH, g.DilationW},
		"group":        g.Groups,
		"kernel_shape": []int{g.KH, g.KW},
		"has_bias":     b != nil,
	}
	return tp.Record("Conv2d", attrs, out, inputs, func(o *Var) {
		dy := o.Grad.Data
		// A gradient buffer that does not exist yet comes back zeroed from
		// GradOf, so the kernels may overwrite it rather than add to it,
		// which spares oneDNN a temporary and an extra pass.
		if x.requiresGrad {
			fresh := x.Grad == nil
			tensor.ConvBackwardData(g, dy, w.Value.Data, tp.GradOf(x).Data, !fresh)
		}
		wantB := b != nil && b.requiresGrad
		switch {
		case w.requiresGrad:
			fresh := w.Grad == nil && (!wantB || b.Grad == nil)
			var db []float32
			if wantB {
				db = tp.GradOf(b).Data
			}
			tensor.ConvBackwardWeights(g, x.Value.Data, dy, tp.GradOf(w).Data, db, !fresh)
		case wantB:
			// Frozen weights, trainable bias: only the channel sums.
			db := tp.GradOf(b).Data
			ohw := g.OutH() * g.OutW()
			for n := 0; n < g.N; n++ {
				for c := 0; c < g.O; c++ {
					var s float32
					for _, v := range dy[(n*g.O+c)*ohw : (n*g.O+c+1)*ohw] {
						s += v
					}
					db[c] += s
				}
			}
		}
	})
}

func or1(v int) int {
	if v == 0 {
		return 1
	}
	return v
}

// String prints the parameters compactly, for error messages.
func (p ConvParams) String() string {
	return fmt.Sprintf("stride %dx%d pad %dx%d dilation %dx%d groups %d",
		or1(p.StrideH), or1(p.StrideW), p.PadH, p.PadW, or1(p.DilationH), or1(p.DilationW), or1(p.Groups))
}
