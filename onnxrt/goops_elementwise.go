package onnxrt

import (
	"fmt"
	"math"
	"slices"
)

// elementwiseOps are the float32 ops that map each element on its own,
// with the attributes and defaults of the ONNX operator specs. They have
// no engine kernel (plain loops, computed in float64 where the formula
// needs it); the activations among them are the ones mobile detectors and
// classifiers (HardSwish, HardSigmoid, Clip as ReLU6) are built from.
func elementwiseOps() map[string]*goOp {
	plain := func(f func(float64) float64) *goOp {
		return &goOp{run: mapFloatOf(func(*gnode) func(float32) float32 {
			return func(x float32) float32 { return float32(f(float64(x))) }
		})}
	}
	withAttrs := func(f func(n *gnode) func(float32) float32) *goOp { return &goOp{run: mapFloatOf(f)} }
	return map[string]*goOp{
		"Floor": plain(math.Floor),
		"Ceil":  plain(math.Ceil),
		"Round": plain(math.RoundToEven), // ONNX rounds halves to even
		"Sign": plain(func(x float64) float64 {
			switch {
			case x > 0:
				return 1
			case x < 0:
				return -1
			}
			return x // 0 and NaN stay
		}),
		"Sin":      plain(math.Sin),
		"Cos":      plain(math.Cos),
		"Tan":      plain(math.Tan),
		"Asin":     plain(math.Asin),
		"Acos":     plain(math.Acos),
		"Atan":     plain(math.Atan),
		"Sinh":     plain(math.Sinh),
		"Cosh":     plain(math.Cosh),
		"Asinh":    plain(math.Asinh),
		"Acosh":    plain(math.Acosh),
		"Atanh":    plain(math.Atanh),
		"Softplus": plain(func(x float64) float64 { return math.Log1p(math.Exp(x)) }),
		"Softsign": plain(func(x float64) float64 { return x / (1 + math.Abs(x)) }),
		"HardSwish": plain(func(x float64) float64 {
			return x * math.Max(0, math.Min(1, x/6+0.5))
		}),
		"HardSigmoid": withAttrs(func(n *gnode) func(float32) float32 {
			alpha, beta := float64(attrFloat(n, "alpha", 0.2)), float64(attrFloat(n, "beta", 0.5))
			return func(x float32) float32 { return float32(math.Max(0, math.Min(1, alpha*float64(x)+beta))) }
		}),
		"LeakyRelu": withAttrs(func(n *gnode) func(float32) float32 {
			alpha := attrFloat(n, "alpha", 0.01)
			return func(x float32) float32 {
				if x < 0 {
					return alpha * x
				}
				return x
			}
		}),
		"ThresholdedRelu": withAttrs(func(n *gnode) func(float32) float32 {
			alpha := attrFloat(n, "alpha", 1)
			return func(x float32) float32 {
				if x > alpha {
					return x
				}
				return 0
			}
		}),
		"Elu": withAttrs(func(n *gnode) func(float32) float32 {
			alpha := float64(attrFloat(n, "alpha", 1))
			return func(x float32) float32 {
				if x < 0 {
					return float32(alpha * math.Expm1(float64(x)))
				}
				return x
			}
		}),
		"Celu": withAttrs(func(n *gnode) func(float32) float32 {
			alpha := float64(attrFloat(n, "alpha", 1))
			return func(x float32) float32 {
				v := float64(x)
				return float32(math.Max(0, v) + math.Min(0, alpha*math.Expm1(v/alpha)))
			}
		}),
		"Selu": withAttrs(func(n *gnode) func(float32) float32 {
			// The spec's defaults, to float32 precision.
			alpha := float64(attrFloat(n, "alpha", 1.67326319217681884765625))
			gamma := float64(attrFloat(n, "gamma", 1.05070102214813232421875))
			return func(x float32) float32 {
				v := float64(x)
				if v <= 0 {
					return float32(gamma * alpha * math.Expm1(v))
				}
				return float32(gamma * v)
			}
		}),
		"Clip": {run: clip},
	}
}

// mapFloatOf is mapFloat for ops whose function depends on the node's
// attributes.
func mapFloatOf(of func(n *gnode) func(float32) float32) func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	return func(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
		return mapFloat(of(n))(c, n, in)
	}
}

// clip bounds x by min and max: scalar inputs 1 and 2 since opset 11,
// attributes before it; an absent bound is no bound.
func clip(c *gctx, n *gnode, in []*gval) ([]*gval, error) {
	lo, hi := attrFloat(n, "min", float32(math.Inf(-1))), attrFloat(n, "max", float32(math.Inf(1)))
	for i, bound := range []*float32{&lo, &hi} {
		if i+1 >= len(in) || in[i+1] == nil {
			continue
		}
		b, err := float(n, in, i+1)
		if err != nil {
			return nil, err
		}
		if len(b.Value.Data) != 1 {
			return nil, fmt.Errorf("Clip's bound (input %d) has shape %v, want a scalar", i+1, b.Value.Shape)
		}
		*bound = b.Value.Data[0]
	}
	x, err := float(n, in, 0)
	if err != nil {
		return nil, err
	}
	out := c.tp.Alloc(x.Value.Shape...)
	for i, v := range x.Value.Data {
		if v == v { // NaN passes through
			v = min(max(v, lo), hi)
		}
		out.Data[i] = v
	}
	out.Shape = slices.Clone(x.Value.Shape)
	return []*gval{fl(out)}, nil
}
