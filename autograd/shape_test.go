package autograd

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sslzoo/sslzoo/tensor"
)

func TestShapeGrad(t *testing.T) {
	cases := []gradCase{
		{name: "Reshape", shapes: [][]int{{2, 3, 4}}, f: func(tp *Tape, in []*Var) *Var { return tp.Reshape(in[0], 4, -1) }},
		{name: "ReshapeScalar", shapes: [][]int{{1, 1}}, f: func(tp *Tape, in []*Var) *Var { return tp.Reshape(in[0]) }},
		{name: "Concat1", shapes: [][]int{{2, 2, 3}, {2, 1, 3}, {2, 3, 3}}, f: func(tp *Tape, in []*Var) *Var { return tp.Concat(in, 1) }},
		{name: "Concat0", shapes: [][]int{{1, 4}, {3, 4}}, f: func(tp *Tape, in []*Var) *Var { return tp.Concat(in, 0) }},
		{name: "ConcatLast", shapes: [][]int{{2, 3, 1}, {2, 3, 2}}, f: func(tp *Tape, in []*Var) *Var { return tp.Concat(in, -1) }},
		{name: "Slice1", shapes: [][]int{{4, 5}}, f: func(tp *Tape, in []*Var) *Var { return tp.Slice(in[0], 1, 1, 4) }},
		{name: "SliceNeg", shapes: [][]int{{4, 5, 2}}, f: func(tp *Tape, in []*Var) *Var { return tp.Slice(in[0], 0, -3, -1) }},
		{name: "SliceLast", shapes: [][]int{{3, 2, 6}}, f: func(tp *Tape, in []*Var) *Var { return tp.Slice(in[0], -1, 0, 1) }},
		{name: "Gather0", shapes: [][]int{{4, 3}}, f: func(tp *Tape, in []*Var) *Var { return tp.Gather(in[0], 0, []int{2, 0, 2}) }},
		{name: "Gather1", shapes: [][]int{{2, 5, 3}}, f: func(tp *Tape, in []*Var) *Var { return tp.Gather(in[0], 1, []int{4, 4, 1}) }},
		{name: "GatherLast", shapes: [][]int{{2, 3, 4}}, f: func(tp *Tape, in []*Var) *Var { return tp.Gather(in[0], -1, []int{3, 0}) }},
		{name: "TakeAlong1", shapes: [][]int{{2, 5, 3}}, f: func(tp *Tape, in []*Var) *Var { return tp.TakeAlongAxis(in[0], 1, []int{4, 0, 2, 1, 1, 3}, 3) }},
		{name: "TakeAlong0", shapes: [][]int{{4, 2}}, f: func(tp *Tape, in []*Var) *Var { return tp.TakeAlongAxis(in[0], 0, []int{3, 3}, 2) }},
		{name: "TakeAlongLast", shapes: [][]int{{3, 4}}, f: func(tp *Tape, in []*Var) *Var { return tp.TakeAlongAxis(in[0], -1, []int{0, 3, 2, 2, 1, 0}, 2) }},
	}
	for _, c := range []struct {
		shape, perm []int
	}{
		{[]int{3, 4}, []int{1, 0}},
		{[]int{2, 3, 4}, []int{2, 0, 1}},
		{[]int{2, 3, 4, 5}, []int{0, 2, 1, 3}},
		{[]int{2, 3, 2, 4}, []int{3, 1, 0, 2}},
		{[]int{40, 35}, []int{1, 0}},
		{[]int{2, 1, 3}, []int{1, 2, 0}},
	} {
		perm := c.perm
		cases = append(cases, gradCase{name: fmt.Sprintf("Transpose%v%v", c.shape, c.perm), shapes: [][]int{c.shape},
			f: func(tp *Tape, in []*Var) *Var { return tp.Transpose(in[0], perm...) }})
	}
	runGradCases(t, cases)
}

// Transpose against index arithmetic, over random shapes and permutations
// that reach every kernel path (contiguous runs, 2-D tiles, strided).
func TestTransposeMatchesIndexing(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	shapes := [][]int{{33, 70}, {3, 200, 150}, {16, 40, 3, 30}, {3, 40, 37}, {2, 3, 4, 5}, {5, 1, 7, 2, 3}, {64, 2, 33}, {1}, {6, 1}}
	for _, shape := range shapes {
		for range 6 {
			perm := rng.Perm(len(shape))
			x := opRand(uint64(len(shape)), fillUniform, shape...)
			tp := NewTape()
			got := tp.Transpose(Const(x), perm...)
			st := contiguousStrides(shape)
			outShape := got.Shape()
			idx := make([]int, len(outShape))
			for o := range got.Value.Data {
				rem := o
				for d := len(outShape) - 1; d >= 0; d-- {
					idx[d] = rem % outShape[d]
					rem /= outShape[d]
				}
				src := 0
				for d, p := range perm {
					src += idx[d] * st[p]
				}
				if got.Value.Data[o] != x.Data[src] {
					t.Fatalf("shape %v perm %v: out[%d] = %g, want x[%d] = %g", shape, perm, o, got.Value.Data[o], src, x.Data[src])
				}
			}
			// Transposing back with the inverse permutation restores x,
			// and the backward (accumulating) path gives the seed back.
			inv := make([]int, len(perm))
			for i, p := range perm {
				inv[p] = i
			}
			back := tp.Transpose(got, inv...)
			if !slices.Equal(back.Value.Data, x.Data) {
				t.Fatalf("shape %v perm %v: round trip differs", shape, perm)
			}
			xp := NewParam("x", x)
			tp2 := NewTape()
			y := tp2.Transpose(xp, perm...)
			seed := opRand(9, fillUniform, y.Shape()...)
			if err := tp2.BackwardWith(y, seed); err != nil {
				t.Fatal(err)
			}
			want := tp.Transpose(Const(seed), inv...)
			if !slices.Equal(xp.Grad.Data, want.Value.Data) {
				t.Fatalf("shape %v perm %v: gradient is not the inverse permutation of the seed", shape, perm)
			}
		}
	}
}

func TestShapeForward(t *testing.T) {
	tp := NewTape()
	x := Const(tensor.FromSlice([]float32{0, 1, 2, 3, 4, 5}, 2, 3))
	if got := tp.Transpose(x, 1, 0); !slices.Equal(got.Value.Data, []float32{0, 3, 1, 4, 2, 5}) {
		t.Errorf("Transpose: %v", got.Value.Data)
	}
	if got := tp.Concat([]*Var{x, x}, 1); !slices.Equal(got.Value.Data, []float32{0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5}) {
		t.Errorf("Concat: %v", got.Value.Data)
	}
	if got := tp.Slice(x, 1, 1, 3); !slices.Equal(got.Value.Data, []float32{1, 2, 4, 5}) {
		t.Errorf("Slice: %v", got.Value.Data)
	}
	if got := tp.Gather(x, 1, []int{2, 2, 0}); !slices.Equal(got.Value.Data, []float32{2, 2, 0, 5, 5, 3}) {
		t.Errorf("Gather: %v", got.Value.Data)
	}
	if got := tp.TakeAlongAxis(x, 1, []int{2, 0, 1, 1}, 2); !slices.Equal(got.Value.Data, []float32{2, 0, 4, 4}) {
		t.Errorf("TakeAlongAxis: %v", got.Value.Data)
	}
	if got := tp.Reshape(x, -1, 2); !slices.Equal(got.Shape(), []int{3, 2}) {
		t.Errorf("Reshape: shape %v", got.Shape())
	}
	for name, bad := range map[string]func(){
		"reshape":    func() { tp.Reshape(x, 4, -1) },
		"perm":       func() { tp.Transpose(x, 0, 0) },
		"perm rank":  func() { tp.Transpose(x, 0) },
		"concat":     func() { tp.Concat([]*Var{x, Const(tensor.New(3, 2))}, 1) },
		"concat nil": func() { tp.Concat(nil, 0) },
		"slice":      func() { tp.Slice(x, 1, 2, 4) },
		"gather":     func() { tp.Gather(x, 0, []int{2}) },
		"take count": func() { tp.TakeAlongAxis(x, 1, []int{0, 1, 2}, 2) },
		"take range": func() { tp.TakeAlongAxis(x, 1, []int{0, 3}, 1) },
	} {
		if Catch(bad) == nil {
			t.Errorf("%s: bad arguments accepted", name)
		}
	}
}

func TestDetachStopsGradient(t *testing.T) {
	x := NewParam("x", tensor.FromSlice([]float32{1, -2, 3}, 3))
	tp := NewTape()
	d := tp.Detach(x)
	if d.RequiresGrad() {
		t.Fatal("Detach output requires grad")
	}
	// y = x*detach(x): dy/dx = detach(x) only.
	y := tp.SumAll(tp.Mul(x, d))
	if err := tp.Backward(y); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(x.Grad.Data, []float32{1, -2, 3}) {
		t.Fatalf("grad %v, want x itself", x.Grad.Data)
	}
	if n := tp.Nodes()[0]; n.Op != "Detach" || n.Inputs[0] != x {
		t.Fatalf("first node %s, want Detach of x", n.Op)
	}
	if err := tp.Backward(tp.SumAll(d)); err == nil {
		t.Fatal("Backward through a detached value alone should fail")
	}
}
