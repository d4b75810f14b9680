package onnxrt

import (
	"slices"

	"github.com/sslzoo/sslzoo/tensor"
)

// Layouts. A Conv with constant weights writes its output NHWC (channels
// innermost), the layout oneDNN's convolution kernels read and write, so
// that a chain of convolutions and the element-wise ops between them pass
// activations on without reordering them at every call, as ONNX Runtime
// does with its NCHWc transformer. The value keeps its NCHW shape and is
// marked nhwc. An op that can take NHWC inputs says so (goOp.nhwc); any
// other gets an NCHW copy from the plan, made once per value, and graph
// outputs are always NCHW.

// toNCHW returns v laid out NCHW: v itself when it is, its buffer
// relabelled when both layouts coincide (one channel, or one pixel), a
// copy otherwise.
func toNCHW(c *gctx, v *gval) *gval {
	if v == nil || !v.nhwc {
		return v
	}
	s := v.f.Shape
	n, ch, hw := s[0], s[1], s[2]*s[3]
	if ch == 1 || hw == 1 {
		return &gval{f: v.f}
	}
	y := c.tp.Alloc(slices.Clone(s)...)
	tensor.NHWCToNCHW(y.Data, v.f.Data, n, ch, hw)
	return &gval{f: y}
}

// toNHWC copies v (NCHW, 4-D) into dst in NHWC order, or copies it as it
// is when it already is NHWC.
func toNHWC(dst []float32, v *gval) {
	if v.nhwc {
		copy(dst, v.f.Data)
		return
	}
	s := v.f.Shape
	tensor.NCHWToNHWC(dst, v.f.Data, s[0], s[1], s[2]*s[3])
}

// nhwcElementwise lets an element-wise op run on NHWC inputs as they are:
// when every input that is not a one-element scalar is NHWC with one and
// the same shape, the op's arithmetic pairs the same elements whatever the
// order, and its outputs of that shape are NHWC too.
func nhwcElementwise(op *goOp) *goOp {
	wrapped := *op
	var shapeOf = func(in []*gval) []int {
		for _, v := range in {
			if v != nil && v.nhwc {
				return v.f.Shape
			}
		}
		return nil
	}
	wrapped.nhwc = func(in []*gval) bool {
		ref := shapeOf(in)
		for _, v := range in {
			switch {
			case v == nil:
			case v.nhwc:
				if !slices.Equal(v.f.Shape, ref) {
					return false
				}
			case len(v.shape()) != 0 && tensor.Numel(v.shape()) != 1:
				return false
			}
		}
		return true
	}
	wrapped.run = func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
		ref := shapeOf(in)
		res, err := op.run(c, n, in)
		if err != nil || ref == nil {
			return res, err
		}
		for i, v := range res {
			if v != nil && v.f != nil && slices.Equal(v.f.Shape, ref) {
				res[i] = &gval{f: v.f, nhwc: true}
			}
		}
		return res, nil
	}
	return &wrapped
}

// nhwcElementwiseOps are the ops nhwcElementwise may wrap: each output
// element depends only on the input elements at the same index.
var nhwcElementwiseOps = map[string]bool{
	"Relu": true, "Sigmoid": true, "Tanh": true, "Neg": true, "Exp": true, "Log": true, "Sqrt": true,
	"Abs": true, "Erf": true, "Add": true, "Sub": true, "Mul": true, "Div": true, "Pow": true,
	"Max": true, "Min": true, "Reciprocal": true, "Clip": true, "HardSwish": true, "HardSigmoid": true,
	"LeakyRelu": true, "Elu": true, "Celu": true, "Selu": true, "ThresholdedRelu": true,
	"Softplus": true, "Softsign": true, "Floor": true, "Ceil": true, "Round": true, "Sign": true,
	"Gelu": true,
}

// passThrough marks ops that hand their input on unchanged (the same
// value), layout and all.
func passThrough(op *goOp) *goOp {
	wrapped := *op
	wrapped.nhwc = func([]*gval) bool { return true }
	return &wrapped
}

// globalAvgPoolNHWC is GlobalAveragePool for NHWC or NCHW input: the mean
// of each channel over the pixels, [N, C, 1, 1], where both layouts are
// the same.
func globalAvgPoolNHWC(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	if len(in) == 0 || in[0] == nil || !in[0].nhwc {
		return globalAvgPool(c, n, in)
	}
	x := in[0].f
	s := x.Shape
	nb, ch, hw := s[0], s[1], s[2]*s[3]
	y := c.tp.Alloc(nb, ch, 1, 1)
	inv := 1 / float32(hw)
	tensor.Parallel(nb, ch*hw, func(lo, hi int) {
		for img := lo; img < hi; img++ {
			acc := y.Data[img*ch : (img+1)*ch]
			clear(acc)
			for p := range hw {
				px := x.Data[(img*hw+p)*ch : (img*hw+p+1)*ch]
				for k, v := range px {
					acc[k] += v
				}
			}
			for k := range acc {
				acc[k] *= inv
			}
		}
	})
	return []*gval{fl(y)}, nil
}

// withLayouts gives each node that can take NHWC inputs the kernel that
// does. It runs last among the fusions, on each node's final kernel.
func withLayouts(n *gnode) {
	switch {
	case nhwcElementwiseOps[n.op]:
		n.impl = nhwcElementwise(n.impl)
	case n.op == "Identity" || n.op == "Dropout":
		n.impl = passThrough(n.impl)
	case n.op == "GlobalAveragePool":
		n.impl = &goOp{check: n.impl.check, run: globalAvgPoolNHWC, nhwc: func([]*gval) bool { return true }}
	}
}
