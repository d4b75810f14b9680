package autograd

import (
	"math"

	"github.com/sslzoo/sslzoo/tensor"
)

// Binary element-wise ops broadcast their operands with numpy rules; their
// backward sums the gradient over the axes an operand was broadcast along.
// Kernels are plain loops selected once per row (never a call per element).

type binOp uint8

const (
	opAdd binOp = iota
	opSub
	opMul
	opDiv
)

var binNames = [...]string{opAdd: "Add", opSub: "Sub", opMul: "Mul", opDiv: "Div"}

// Add returns a + b with broadcasting.
func (tp *Tape) Add(a, b *Var) *Var { return tp.binary(opAdd, a, b) }

// Sub returns a - b with broadcasting.
func (tp *Tape) Sub(a, b *Var) *Var { return tp.binary(opSub, a, b) }

// Mul returns a * b (element-wise) with broadcasting.
func (tp *Tape) Mul(a, b *Var) *Var { return tp.binary(opMul, a, b) }

// Div returns a / b with broadcasting.
func (tp *Tape) Div(a, b *Var) *Var { return tp.binary(opDiv, a, b) }

func (tp *Tape) binary(op binOp, a, b *Var) *Var {
	name := binNames[op]
	as, bs := a.Value.Shape, b.Value.Shape
	var shape []int
	if tensor.SameShape(as, bs) {
		shape = as
	} else {
		shape = broadcastShape(name, as, bs)
	}
	out := tp.Alloc(shape...)
	ad, bd, od := a.Value.Data, b.Value.Data, out.Data
	ast, bst := broadcastStrides(as, shape), broadcastStrides(bs, shape)
	p := makePlan(shape, contiguousStrides(shape), ast, bst)
	sa, sb := p.innerStride(1), p.innerStride(2)
	n := p.inner
	if p.rows == 1 {
		// One long row (same shapes, or a scalar operand): split the row
		// itself over cores, since forRows splits only across rows.
		tensor.Parallel(n, 1, func(lo, hi int) {
			binRow(op, od[lo:hi], ad[lo*sa:], sa, bd[lo*sb:], sb)
		})
	} else {
		p.forRows(1, func(c *cursor, lo, hi int) {
			for r := lo; r < hi; r++ {
				binRow(op, od[c.off[0]:c.off[0]+n], ad[c.off[1]:], sa, bd[c.off[2]:], sb)
				c.next()
			}
		})
	}
	return tp.Record(name, nil, out, []*Var{a, b}, func(o *Var) {
		g := o.Grad.Data
		cst := contiguousStrides(shape)
		// A same-shape Add/Sub passes the gradient through unchanged: copy it
		// into a fresh buffer rather than zero-and-accumulate.
		if (op == opAdd || op == opSub) && tensor.SameShape(as, shape) {
			if ga, fresh := tp.GradForWrite(a); fresh {
				copy(ga.Data, g)
			} else if ga != nil {
				addInto(ga.Data, g)
			}
		} else if ga := tp.GradOf(a); ga != nil {
			switch op {
			case opAdd, opSub:
				tp.accumulate(ga.Data, ast, shape, accScale, 1, g, cst, nil, nil, nil, nil)
			case opMul:
				tp.accumulate(ga.Data, ast, shape, accMul, 1, g, cst, bd, bst, nil, nil)
			case opDiv:
				tp.accumulate(ga.Data, ast, shape, accDiv, 1, g, cst, bd, bst, nil, nil)
			}
		}
		if op == opAdd && tensor.SameShape(bs, shape) {
			if gb, fresh := tp.GradForWrite(b); fresh {
				copy(gb.Data, g)
			} else if gb != nil {
				addInto(gb.Data, g)
			}
		} else if gb := tp.GradOf(b); gb != nil {
			switch op {
			case opAdd:
				tp.accumulate(gb.Data, bst, shape, accScale, 1, g, cst, nil, nil, nil, nil)
			case opSub:
				tp.accumulate(gb.Data, bst, shape, accScale, -1, g, cst, nil, nil, nil, nil)
			case opMul:
				tp.accumulate(gb.Data, bst, shape, accMul, 1, g, cst, ad, ast, nil, nil)
			case opDiv:
				// d(a/b)/db = -(a/b)/b: reuse the output instead of a.
				tp.accumulate(gb.Data, bst, shape, accDivB, 1, g, cst, od, cst, bd, bst)
			}
		}
	})
}

// binRow computes one row o = a op b; a and b start at the row's offsets and
// advance by sa and sb (0: broadcast scalar, 1: contiguous).
func binRow(op binOp, o, a []float32, sa int, b []float32, sb int) {
	n := len(o)
	switch {
	case sa == 1 && sb == 1:
		a, b := a[:n], b[:n]
		switch op {
		case opAdd:
			tensor.Add(o, a, b)
		case opSub:
			for i := range o {
				o[i] = a[i] - b[i]
			}
		case opMul:
			for i := range o {
				o[i] = a[i] * b[i]
			}
		case opDiv:
			for i := range o {
				o[i] = a[i] / b[i]
			}
		}
	case sa == 1 && sb == 0:
		a, v := a[:n], b[0]
		switch op {
		case opAdd:
			tensor.AddScalar(o, a, v)
		case opSub:
			for i := range o {
				o[i] = a[i] - v
			}
		case opMul:
			for i := range o {
				o[i] = a[i] * v
			}
		case opDiv:
			for i := range o {
				o[i] = a[i] / v
			}
		}
	case sa == 0 && sb == 1:
		v, b := a[0], b[:n]
		switch op {
		case opAdd:
			tensor.AddScalar(o, b, v) // v + b[i] == b[i] + v exactly
		case opSub:
			for i := range o {
				o[i] = v - b[i]
			}
		case opMul:
			for i := range o {
				o[i] = v * b[i]
			}
		case opDiv:
			for i := range o {
				o[i] = v / b[i]
			}
		}
	default:
		// Permuted views never reach here (every op walks its inputs
		// contiguously or broadcast), but stay correct for any strides.
		for i := range o {
			x, y := a[i*sa], b[i*sb]
			switch op {
			case opAdd:
				o[i] = x + y
			case opSub:
				o[i] = x - y
			case opMul:
				o[i] = x * y
			case opDiv:
				o[i] = x / y
			}
		}
	}
}

// addInto adds src into dst (equal lengths) with the vectorised kernel,
// split over cores when large.
func addInto(dst, src []float32) {
	src = src[:len(dst)]
	tensor.Parallel(len(dst), 1, func(lo, hi int) { tensor.AddTo(dst[lo:hi], src[lo:hi]) })
}

// accOp is what a backward accumulation adds into dst per element.
type accOp uint8

const (
	accScale accOp = iota // dst += alpha*g
	accMul                // dst += g*x
	accDiv                // dst += g/x
	accDivB               // dst -= g*x/y
)

// accumulate adds op(g, x, y) into dst while iterating over shape. Every
// operand has its own strides over shape; dst strides with zeros make this
// a reduction (the backward of broadcasting, or Sum). Operands an op does
// not use are passed as nil.
func (tp *Tape) accumulate(dst []float32, dstSt, shape []int, op accOp, alpha float32, g []float32, gSt []int, x []float32, xSt []int, y []float32, ySt []int) {
	zero := make([]int, len(shape))
	if xSt == nil {
		xSt = zero
	}
	if ySt == nil {
		ySt = zero
	}
	p := makePlan(shape, dstSt, gSt, xSt, ySt)
	sd, sg, sx, sy := p.innerStride(0), p.innerStride(1), p.innerStride(2), p.innerStride(3)
	n := p.inner
	p.forRowsInto(tp.pool, 0, dst, 2, func(c *cursor, lo, hi int, d []float32) {
		for r := lo; r < hi; r++ {
			var xr, yr []float32
			if x != nil {
				xr = x[c.off[2]:]
			}
			if y != nil {
				yr = y[c.off[3]:]
			}
			accRow(op, alpha, n, d[c.off[0]:], sd, g[c.off[1]:], sg, xr, sx, yr, sy)
			c.next()
		}
	})
}

// accRow is one row of accumulate.
func accRow(op accOp, alpha float32, n int, d []float32, sd int, g []float32, sg int, x []float32, sx int, y []float32, sy int) {
	if sd == 0 {
		// Reduction into one element: sum in float64 for accuracy.
		var acc float64
		switch {
		case op == accScale && sg == 1:
			acc = float64(alpha) * sumf(g[:n])
		case op == accScale && sg == 0:
			acc = float64(alpha) * float64(g[0]) * float64(n)
		case op == accMul && sg == 1 && sx == 1:
			acc = dotf(g[:n], x[:n])
		default:
			for i := 0; i < n; i++ {
				acc += float64(accElem(op, alpha, g[i*sg], x, i*sx, y, i*sy))
			}
		}
		d[0] += float32(acc)
		return
	}
	d = d[:n]
	switch {
	case op == accScale && sg == 1 && alpha == 1:
		tensor.AddTo(d, g[:n])
	case op == accScale && sg == 1:
		g := g[:n]
		for i := range d {
			d[i] += alpha * g[i]
		}
	case op == accScale && sg == 0:
		v := alpha * g[0]
		for i := range d {
			d[i] += v
		}
	case op == accMul && sg == 1 && sx == 1:
		g, x := g[:n], x[:n]
		for i := range d {
			d[i] += g[i] * x[i]
		}
	case op == accMul && sg == 1 && sx == 0:
		g, v := g[:n], x[0]
		for i := range d {
			d[i] += g[i] * v
		}
	case op == accDiv && sg == 1 && sx == 1:
		g, x := g[:n], x[:n]
		for i := range d {
			d[i] += g[i] / x[i]
		}
	case op == accDiv && sg == 1 && sx == 0:
		g, v := g[:n], x[0]
		for i := range d {
			d[i] += g[i] / v
		}
	case op == accDivB && sg == 1 && sx == 1 && sy == 1:
		g, x, y := g[:n], x[:n], y[:n]
		for i := range d {
			d[i] -= g[i] * x[i] / y[i]
		}
	case op == accDivB && sg == 1 && sx == 1 && sy == 0:
		g, x, v := g[:n], x[:n], y[0]
		for i := range d {
			d[i] -= g[i] * x[i] / v
		}
	default:
		for i := range d {
			d[i] += accElem(op, alpha, g[i*sg], x, i*sx, y, i*sy)
		}
	}
}

// accElem is the general (slow-path) form of one accumulated term.
func accElem(op accOp, alpha, g float32, x []float32, ix int, y []float32, iy int) float32 {
	switch op {
	case accMul:
		return g * x[ix]
	case accDiv:
		return g / x[ix]
	case accDivB:
		return -g * x[ix] / y[iy]
	}
	return alpha * g
}

// sumf sums x in float64 with four independent chains.
func sumf(x []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += float64(x[i])
		s1 += float64(x[i+1])
		s2 += float64(x[i+2])
		s3 += float64(x[i+3])
	}
	for ; i < len(x); i++ {
		s0 += float64(x[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// dotf is the float64-accumulated dot product of equal-length a and b.
func dotf(a, b []float32) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += float64(a[i]) * float64(b[i])
		s1 += float64(a[i+1]) * float64(b[i+1])
		s2 += float64(a[i+2]) * float64(b[i+2])
		s3 += float64(a[i+3]) * float64(b[i+3])
	}
	for ; i < len(a); i++ {
		s0 += float64(a[i]) * float64(b[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// unary runs an element-wise op whose gradient needs only x, the output and
// the upstream gradient. fwd and bwd process whole chunks (their loops are
// the hot loops); cost is the rough per-element work for splitting.
func (tp *Tape) unary(op string, attrs map[string]any, x *Var, cost int, fwd func(o, x []float32), bwd func(gx, g, x, o []float32)) *Var {
	out := tp.Alloc(x.Value.Shape...)
	xd, od := x.Value.Data, out.Data
	tensor.Parallel(len(od), cost, func(lo, hi int) { fwd(od[lo:hi], xd[lo:hi]) })
	return tp.Record(op, attrs, out, []*Var{x}, func(o *Var) {
		gx := tp.GradOf(x)
		if gx == nil {
			return
		}
		g := o.Grad.Data
		tensor.Parallel(len(od), cost, func(lo, hi int) { bwd(gx.Data[lo:hi], g[lo:hi], xd[lo:hi], od[lo:hi]) })
	})
}

// AddScalar returns x + s.
func (tp *Tape) AddScalar(x *Var, s float32) *Var {
	return tp.unary("AddScalar", map[string]any{"value": s}, x, 1,
		func(o, x []float32) {
			x = x[:len(o)]
			for i := range o {
				o[i] = x[i] + s
			}
		},
		func(gx, g, _, _ []float32) {
			g = g[:len(gx)]
			for i := range gx {
				gx[i] += g[i]
			}
		})
}

// MulScalar returns x * s.
func (tp *Tape) MulScalar(x *Var, s float32) *Var {
	return tp.unary("MulScalar", map[string]any{"value": s}, x, 1,
		func(o, x []float32) {
			x = x[:len(o)]
			for i := range o {
				o[i] = x[i] * s
			}
		},
		func(gx, g, _, _ []float32) {
			g = g[:len(gx)]
			for i := range gx {
				gx[i] += s * g[i]
			}
		})
}

// Neg returns -x.
func (tp *Tape) Neg(x *Var) *Var {
	return tp.unary("Neg", nil, x, 1,
		func(o, x []float32) {
			x = x[:len(o)]
			for i := range o {
				o[i] = -x[i]
			}
		},
		func(gx, g, _, _ []float32) {
			g = g[:len(gx)]
			for i := range gx {
				gx[i] -= g[i]
			}
		})
}

// Exp returns e^x.
func (tp *Tape) Exp(x *Var) *Var {
	return tp.unary("Exp", nil, x, 8,
		func(o, x []float32) {
			x = x[:len(o)]
			for i := range o {
				o[i] = exp32(x[i])
			}
		},
		func(gx, g, _, o []float32) {
			g, o = g[:len(gx)], o[:len(gx)]
			for i := range gx {
				gx[i] += g[i] * o[i]
			}
		})
}

// Log returns the natural logarithm of x.
func (tp *Tape) Log(x *Var) *Var {
	return tp.unary("Log", nil, x, 16,
		func(o, x []float32) {
			x = x[:len(o)]
			for i := range o {
				o[i] = float32(math.Log(float64(x[i])))
			}
		},
		func(gx, g, x, _ []float32) {
			g, x = g[:len(gx)], x[:len(gx)]
			for i := range gx {
				gx[i] += g[i] / x[i]
			}
		})
}

// Sqrt returns the square root of x.
func (tp *Tape) Sqrt(x *Var) *Var {
	return tp.unary("Sqrt", nil, x, 4,
		func(o, x []float32) {
			x = x[:len(o)]
			for i := range o {
				o[i] = float32(math.Sqrt(float64(x[i])))
			}
		},
		func(gx, g, _, o []float32) {
			g, o = g[:len(gx)], o[:len(gx)]
			for i := range gx {
				gx[i] += g[i] / (2 * o[i])
			}
		})
}

// Square returns x*x.
func (tp *Tape) Square(x *Var) *Var {
	return tp.unary("Square", nil, x, 1,
		func(o, x []float32) {
			x = x[:len(o)]
			for i := range o {
				o[i] = x[i] * x[i]
			}
		},
		func(gx, g, x, _ []float32) {
			g, x = g[:len(gx)], x[:len(gx)]
			for i := range gx {
				gx[i] += 2 * g[i] * x[i]
			}
		})
}

// Abs returns |x|; its gradient at 0 is 0, as in PyTorch.
func (tp *Tape) Abs(x *Var) *Var {
	return tp.unary("Abs", nil, x, 1,
		func(o, x []float32) {
			x = x[:len(o)]
			for i := range o {
				o[i] = float32(math.Abs(float64(x[i])))
			}
		},
		func(gx, g, x, _ []float32) {
			g, x = g[:len(gx)], x[:len(gx)]
			for i := range gx {
				if x[i] > 0 {
					gx[i] += g[i]
				} else if x[i] < 0 {
					gx[i] -= g[i]
				}
			}
		})
}

// PowScalar returns x^p.
func (tp *Tape) PowScalar(x *Var, p float32) *Var {
	switch p {
	case 2:
		// Keep the common case exact and fast, but record it as Pow so
		// export sees what the caller asked for.
		return tp.unary("PowScalar", map[string]any{"exponent": p}, x, 1,
			func(o, x []float32) {
				x = x[:len(o)]
				for i := range o {
					o[i] = x[i] * x[i]
				}
			},
			func(gx, g, x, _ []float32) {
				g, x = g[:len(gx)], x[:len(gx)]
				for i := range gx {
					gx[i] += 2 * g[i] * x[i]
				}
			})
	}
	pd := float64(p)
	return tp.unary("PowScalar", map[string]any{"exponent": p}, x, 24,
		func(o, x []float32) {
			x = x[:len(o)]
			for i := range o {
				o[i] = float32(math.Pow(float64(x[i]), pd))
			}
		},
		func(gx, g, x, _ []float32) {
			g, x = g[:len(gx)], x[:len(gx)]
			for i := range gx {
				if p == 0 {
					continue
				}
				gx[i] += g[i] * float32(pd*math.Pow(float64(x[i]), pd-1))
			}
		})
}
