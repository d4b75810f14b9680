package autograd

import "math"

// ReLU returns max(x, 0); the gradient at 0 is 0, as in PyTorch.
func (tp *Tape) ReLU(x *Var) *Var {
	return tp.unary("ReLU", nil, x, 1,
		func(o, x []float32) {
			x = x[:len(o)]
			for i := range o {
				// NaN passes through, as in PyTorch: NaN < 0 is false.
				v := x[i]
				if v < 0 {
					v = 0
				}
				o[i] = v
			}
		},
		func(gx, g, _, o []float32) {
			g, o = g[:len(gx)], o[:len(gx)]
			for i := range gx {
				if o[i] > 0 {
					gx[i] += g[i]
				}
			}
		})
}

const (
	invSqrt2   = 0.7071067811865476
	invSqrt2Pi = 0.3989422804014327
)

// GELU is the exact Gaussian error linear unit x*Φ(x) = 0.5·x·(1+erf(x/√2)),
// torch.nn.functional.gelu with approximate="none".
func (tp *Tape) GELU(x *Var) *Var {
	return tp.unary("GELU", map[string]any{"approximate": "none"}, x, 12,
		func(o, x []float32) {
			x = x[:len(o)]
			for i := range o {
				v := float64(x[i])
				o[i] = float32(0.5 * v * (1 + erf64(v*invSqrt2)))
			}
		},
		func(gx, g, x, _ []float32) {
			g, x = g[:len(gx)], x[:len(gx)]
			for i := range gx {
				// d/dx x·Φ(x) = Φ(x) + x·φ(x)
				v := x[i]
				cdf := 0.5 * (1 + erf64(float64(v)*invSqrt2))
				pdf := invSqrt2Pi * float64(exp32(-0.5*v*v))
				gx[i] += g[i] * float32(cdf+float64(v)*pdf)
			}
		})
}

// Sigmoid returns 1/(1+e^-x).
func (tp *Tape) Sigmoid(x *Var) *Var {
	return tp.unary("Sigmoid", nil, x, 10,
		func(o, x []float32) {
			x = x[:len(o)]
			for i := range o {
				o[i] = 1 / (1 + exp32(-x[i]))
			}
		},
		func(gx, g, _, o []float32) {
			g, o = g[:len(gx)], o[:len(gx)]
			for i := range gx {
				gx[i] += g[i] * o[i] * (1 - o[i])
			}
		})
}

// Tanh returns the hyperbolic tangent of x.
func (tp *Tape) Tanh(x *Var) *Var {
	return tp.unary("Tanh", nil, x, 20,
		func(o, x []float32) {
			x = x[:len(o)]
			for i := range o {
				o[i] = float32(math.Tanh(float64(x[i])))
			}
		},
		func(gx, g, _, o []float32) {
			g, o = g[:len(gx)], o[:len(gx)]
			for i := range gx {
				gx[i] += g[i] * (1 - o[i]*o[i])
			}
		})
}
