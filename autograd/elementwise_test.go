package autograd

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sslzoo/sslzoo/tensor"
)

// Shared helpers for the op tests (prefixed "op" to stay clear of other
// test files in this package).

// opFill says how to draw an input.
type opFill int

const (
	fillUniform  opFill = iota // U(-1, 1)
	fillPositive               // U(0.2, 2)
	fillAwayZero               // ±U(0.3, 1.5): for kinks at 0 and divisors
	fillDistinct               // a shuffled grid with gaps > 2*eps: for max/argmax
)

type gradCase struct {
	name   string
	shapes [][]int
	fills  []opFill // per input; missing means fillUniform
	f      func(tp *Tape, in []*Var) *Var
	opt    GradCheck
}

func opSeed(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

func opRand(seed uint64, fill opFill, shape ...int) *tensor.Tensor {
	rng := rand.New(rand.NewPCG(seed, 99))
	t := tensor.New(shape...)
	for i := range t.Data {
		switch fill {
		case fillPositive:
			t.Data[i] = 0.2 + 1.8*rng.Float32()
		case fillAwayZero:
			v := 0.3 + 1.2*rng.Float32()
			if rng.IntN(2) == 0 {
				v = -v
			}
			t.Data[i] = v
		case fillDistinct:
			t.Data[i] = float32(i)*0.05 - float32(len(t.Data))*0.025
		default:
			t.Data[i] = 2*rng.Float32() - 1
		}
	}
	if fill == fillDistinct {
		rng.Shuffle(len(t.Data), func(i, j int) { t.Data[i], t.Data[j] = t.Data[j], t.Data[i] })
	}
	return t
}

func runGradCases(t *testing.T, cases []gradCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ins := make([]*tensor.Tensor, len(c.shapes))
			for i, s := range c.shapes {
				fill := fillUniform
				if i < len(c.fills) {
					fill = c.fills[i]
				}
				ins[i] = opRand(opSeed(c.name)+uint64(i), fill, s...)
			}
			if err := CheckGrad(c.f, ins, c.opt); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// opClose reports the first element where got and want differ by more than
// tol*(1+|want|).
func opClose(got []float32, want []float64, tol float64) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d values, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := float64(got[i]), want[i]
		if math.IsNaN(w) && math.IsNaN(g) {
			continue
		}
		if math.IsInf(w, 0) && g == w {
			continue
		}
		if !(math.Abs(g-w) <= tol*(1+math.Abs(w))) {
			return fmt.Errorf("element %d: got %.8g, want %.8g", i, g, w)
		}
	}
	return nil
}

func opVals(vs ...float64) []float64 { return vs }

func TestBinaryGrad(t *testing.T) {
	shapes := [][2][]int{
		{{2, 3}, {2, 3}},
		{{4, 1, 3}, {2, 3}},
		{{2, 3, 2, 2}, {1, 3, 1, 1}},
		{{3, 4}, {4}},
		{{3, 1}, {1, 4}},
		{{2, 3, 4}, {2, 3, 1}},
		{{}, {2, 2}},
		{{1}, {3, 2}},
		{{2, 1, 2, 3}, {2, 2, 1, 3}},
		{{2, 3, 4, 2}, {2, 1, 1, 2}},
	}
	ops := []struct {
		name string
		f    func(tp *Tape, a, b *Var) *Var
		fb   opFill
	}{
		{"Add", (*Tape).Add, fillUniform},
		{"Sub", (*Tape).Sub, fillUniform},
		{"Mul", (*Tape).Mul, fillUniform},
		{"Div", (*Tape).Div, fillAwayZero},
	}
	var cases []gradCase
	for _, op := range ops {
		for _, s := range shapes {
			for _, swap := range []bool{false, true} {
				a, b := s[0], s[1]
				if swap {
					a, b = b, a
				}
				f := op.f
				cases = append(cases, gradCase{
					name:   fmt.Sprintf("%s%v%v", op.name, a, b),
					shapes: [][]int{a, b},
					fills:  []opFill{fillUniform, op.fb},
					f:      func(tp *Tape, in []*Var) *Var { return f(tp, in[0], in[1]) },
				})
			}
		}
	}
	runGradCases(t, cases)
}

func TestBinaryBroadcastForward(t *testing.T) {
	tp := NewTape()
	// [2,1,3] + [2,1] -> [2,2,3]; hand-computed.
	a := Const(tensor.FromSlice([]float32{1, 2, 3, 4, 5, 6}, 2, 1, 3))
	b := Const(tensor.FromSlice([]float32{10, 20}, 2, 1))
	got := tp.Add(a, b)
	if !tensor.SameShape(got.Shape(), []int{2, 2, 3}) {
		t.Fatalf("shape %v", got.Shape())
	}
	want := opVals(11, 12, 13, 21, 22, 23, 14, 15, 16, 24, 25, 26)
	if err := opClose(got.Value.Data, want, 0); err != nil {
		t.Fatal(err)
	}
	d := tp.Div(b, a)
	if err := opClose(d.Value.Data, opVals(10, 5, 10.0/3, 20, 10, 20.0/3, 2.5, 2, 10.0/6, 5, 4, 20.0/6), 1e-7); err != nil {
		t.Fatal(err)
	}
	if err := Catch(func() { tp.Mul(a, Const(tensor.New(4))) }); err == nil {
		t.Fatal("Mul [2,1,3] by [4]: no error")
	}
}

// A large broadcast reduction exercises the parallel private-buffer path.
func TestBroadcastGradLargeParallel(t *testing.T) {
	x := opRand(1, fillUniform, 64, 16, 8, 8)
	w := opRand(2, fillUniform, 1, 16, 1, 1)
	tp := NewTape()
	xv, wv := NewParam("x", x), NewParam("w", w)
	out := tp.Mul(xv, wv)
	seed := opRand(3, fillUniform, out.Shape()...)
	if err := tp.BackwardWith(out, seed); err != nil {
		t.Fatal(err)
	}
	want := make([]float64, 16)
	for n := range 64 {
		for c := range 16 {
			for k := range 64 {
				i := (n*16+c)*64 + k
				want[c] += float64(seed.Data[i]) * float64(x.Data[i])
			}
		}
	}
	if err := opClose(wv.Grad.Data, want, 1e-5); err != nil {
		t.Fatal(err)
	}
	for i := range x.Data {
		if g := xv.Grad.Data[i]; g != seed.Data[i]*w.Data[(i/64)%16] {
			t.Fatalf("x grad %d: %g", i, g)
		}
	}
}

func TestUnaryGrad(t *testing.T) {
	type u struct {
		name string
		fill opFill
		f    func(tp *Tape, x *Var) *Var
	}
	ops := []u{
		{"AddScalar", fillUniform, func(tp *Tape, x *Var) *Var { return tp.AddScalar(x, 0.7) }},
		{"MulScalar", fillUniform, func(tp *Tape, x *Var) *Var { return tp.MulScalar(x, -1.5) }},
		{"Neg", fillUniform, (*Tape).Neg},
		{"Exp", fillUniform, (*Tape).Exp},
		{"Log", fillPositive, (*Tape).Log},
		{"Sqrt", fillPositive, (*Tape).Sqrt},
		{"Square", fillUniform, (*Tape).Square},
		{"Abs", fillAwayZero, (*Tape).Abs},
		{"Pow2", fillUniform, func(tp *Tape, x *Var) *Var { return tp.PowScalar(x, 2) }},
		{"Pow3", fillUniform, func(tp *Tape, x *Var) *Var { return tp.PowScalar(x, 3) }},
		{"PowHalf", fillPositive, func(tp *Tape, x *Var) *Var { return tp.PowScalar(x, 0.5) }},
		{"PowNeg", fillPositive, func(tp *Tape, x *Var) *Var { return tp.PowScalar(x, -1.5) }},
		{"ReLU", fillAwayZero, (*Tape).ReLU},
		{"GELU", fillUniform, (*Tape).GELU},
		{"Sigmoid", fillUniform, (*Tape).Sigmoid},
		{"Tanh", fillUniform, (*Tape).Tanh},
	}
	var cases []gradCase
	for _, op := range ops {
		for _, s := range [][]int{{}, {7}, {2, 3, 4}} {
			f := op.f
			cases = append(cases, gradCase{
				name:   fmt.Sprintf("%s%v", op.name, s),
				shapes: [][]int{s},
				fills:  []opFill{op.fill},
				f:      func(tp *Tape, in []*Var) *Var { return f(tp, in[0]) },
			})
		}
	}
	// GELU's curvature is largest near 0; also probe wide inputs.
	cases = append(cases, gradCase{
		name:   "GELUwide",
		shapes: [][]int{{40}},
		f: func(tp *Tape, in []*Var) *Var {
			return tp.GELU(tp.MulScalar(in[0], 4))
		},
	})
	runGradCases(t, cases)
}

func TestUnaryForward(t *testing.T) {
	xs := []float32{-3, -0.5, 0, 0.25, 2}
	ref := func(f func(float64) float64) []float64 {
		w := make([]float64, len(xs))
		for i, v := range xs {
			w[i] = f(float64(v))
		}
		return w
	}
	cases := []struct {
		name string
		f    func(tp *Tape, x *Var) *Var
		want []float64
	}{
		{"Exp", (*Tape).Exp, ref(math.Exp)},
		{"Sigmoid", (*Tape).Sigmoid, ref(func(v float64) float64 { return 1 / (1 + math.Exp(-v)) })},
		{"Tanh", (*Tape).Tanh, ref(math.Tanh)},
		{"GELU", (*Tape).GELU, ref(func(v float64) float64 { return 0.5 * v * (1 + math.Erf(v/math.Sqrt2)) })},
		{"ReLU", (*Tape).ReLU, opVals(0, 0, 0, 0.25, 2)},
		{"Abs", (*Tape).Abs, opVals(3, 0.5, 0, 0.25, 2)},
		{"Square", (*Tape).Square, opVals(9, 0.25, 0, 0.0625, 4)},
		{"Neg", (*Tape).Neg, opVals(3, 0.5, 0, -0.25, -2)},
		{"Pow3", func(tp *Tape, x *Var) *Var { return tp.PowScalar(x, 3) }, opVals(-27, -0.125, 0, 1.0/64, 8)},
	}
	for _, c := range cases {
		tp := NewTape()
		got := c.f(tp, Const(tensor.FromSlice(append([]float32(nil), xs...), 5)))
		if err := opClose(got.Value.Data, c.want, 2e-7); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// exp32 and the GELU tables replace float64 math in hot loops: check them
// densely against float64 over their whole useful range.
func TestFastMath(t *testing.T) {
	for x := float32(-87.3); x < 88.7; x += 0.00731 {
		want := math.Exp(float64(x))
		got := float64(exp32(x))
		if math.Abs(got-want) > 2.5e-7*want {
			t.Fatalf("exp32(%g) = %g, want %g (rel %g)", x, got, want, math.Abs(got-want)/want)
		}
	}
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	if exp32(-200) != 0 || exp32(-inf) != 0 || exp32(100) != inf || exp32(inf) != inf || !isNaN32(exp32(nan)) {
		t.Fatal("exp32 limits")
	}
	for x := float32(-8); x < 8; x += 0.000913 {
		xd := float64(x)
		cdf := 0.5 * (1 + math.Erf(xd/math.Sqrt2))
		want := xd * cdf
		if got := float64(gelu32(x)); math.Abs(got-want) > 2e-7*(1+math.Abs(want)) {
			t.Fatalf("gelu32(%g) = %.9g, want %.9g", x, got, want)
		}
		want = cdf + xd*math.Exp(-xd*xd/2)/math.Sqrt(2*math.Pi)
		if got := float64(geluGrad32(x)); math.Abs(got-want) > 2e-7*(1+math.Abs(want)) {
			t.Fatalf("geluGrad32(%g) = %.9g, want %.9g", x, got, want)
		}
	}
	// Tiny inputs keep their relative accuracy (GELU(x) ~ x/2).
	for _, x := range []float32{1e-3, -2e-5, 3e-8} {
		if got := gelu32(x); math.Abs(float64(got)/float64(x)-0.5) > 1e-3 {
			t.Fatalf("gelu32(%g) = %g", x, got)
		}
	}
	if gelu32(inf) != inf || gelu32(-inf) == gelu32(-inf) || !isNaN32(gelu32(nan)) || !isNaN32(geluGrad32(nan)) || geluGrad32(-inf) != 0 {
		t.Fatal("gelu32 limits")
	}
	// ReLU's branch-free masks.
	for _, c := range []struct{ x, relu, mask float32 }{
		{1.5, 1.5, 1}, {-2, 0, 0}, {0, 0, 0}, {float32(math.Copysign(0, -1)), 0, 0},
		{inf, inf, 1}, {-inf, 0, 0}, {1e-45, 1e-45, 1},
	} {
		if r := relu32(c.x); r != c.relu || math.Signbit(float64(r)) {
			t.Errorf("relu32(%g) = %g", c.x, r)
		}
		if m := positiveMask(c.x); (m != 0) != (c.mask != 0) {
			t.Errorf("positiveMask(%g) = %#x", c.x, m)
		}
	}
	negNaN := math.Float32frombits(0xffc00000)
	if !isNaN32(relu32(nan)) || !isNaN32(relu32(negNaN)) || positiveMask(nan) != 0 {
		t.Error("NaN through ReLU")
	}
}

func isNaN32(v float32) bool { return v != v }

// TestReLUInPlace: the same values and input gradient as ReLU (after a
// BatchNorm, whose backward reads only its input), written over the
// tape's own buffer; an input the tape does not own is left as it was.
func TestReLUInPlace(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	x := tensor.New(4, 3, 5, 5)
	for i := range x.Data {
		x.Data[i] = float32(rng.NormFloat64())
	}
	run := func(inPlace bool) (y, gx *tensor.Tensor, shared bool) {
		tp := NewTape()
		xv := NewParam("x", x.Clone())
		n := tp.BatchNorm(xv, nil, nil, nil, nil, true, 0.1, 1e-5)
		var r *Var
		if inPlace {
			r = tp.ReLUInPlace(n)
		} else {
			r = tp.ReLU(n)
		}
		loss := tp.Sum(tp.Mul(r, r), nil, false)
		if err := tp.Backward(loss); err != nil {
			t.Fatal(err)
		}
		return r.Value.Clone(), xv.Grad.Clone(), tensor.BufferID(r.Value.Data) == tensor.BufferID(n.Value.Data)
	}
	y0, g0, _ := run(false)
	y1, g1, shared := run(true)
	if !shared {
		t.Error("ReLUInPlace wrote a new buffer")
	}
	for i := range y0.Data {
		if y0.Data[i] != y1.Data[i] || g0.Data[i] != g1.Data[i] {
			t.Fatalf("value %d: y %v vs %v, dx %v vs %v", i, y1.Data[i], y0.Data[i], g1.Data[i], g0.Data[i])
		}
	}
	tp := NewTape()
	in := Const(x)
	before := x.Clone()
	out := tp.ReLUInPlace(in)
	if tensor.BufferID(out.Value.Data) == tensor.BufferID(x.Data) || !slices.Equal(x.Data, before.Data) {
		t.Error("ReLUInPlace overwrote a buffer the tape does not own")
	}
}
