package autograd

import (
	"testing"

	"github.com/sslzoo/sslzoo/tensor"
)

// scale is a minimal op used to exercise the tape itself: y = k*x.
func scale(tp *Tape, x *Var, k float32) *Var {
	out := tp.Alloc(x.Value.Shape...)
	for i, v := range x.Value.Data {
		out.Data[i] = k * v
	}
	return tp.Record("Scale", map[string]any{"k": k}, out, []*Var{x}, func(o *Var) {
		if g := tp.GradOf(x); g != nil {
			for i, v := range o.Grad.Data {
				g.Data[i] += k * v
			}
		}
	})
}

// plus is y = a + b for same-shape inputs.
func plus(tp *Tape, a, b *Var) *Var {
	out := tp.Alloc(a.Value.Shape...)
	for i := range out.Data {
		out.Data[i] = a.Value.Data[i] + b.Value.Data[i]
	}
	return tp.Record("Plus", nil, out, []*Var{a, b}, func(o *Var) {
		for _, in := range []*Var{a, b} {
			if g := tp.GradOf(in); g != nil {
				for i, v := range o.Grad.Data {
					g.Data[i] += v
				}
			}
		}
	})
}

func TestBackwardAccumulatesThroughSharedVar(t *testing.T) {
	tp := NewTape()
	x := NewParam("x", tensor.FromSlice([]float32{1, 2}, 2))
	// y = 3x + 5x, so dy/dx = 8 for each element; the two uses of x must add.
	y := plus(tp, scale(tp, x, 3), scale(tp, x, 5))
	seed := tensor.FromSlice([]float32{1, 10}, 2)
	if err := tp.BackwardWith(y, seed); err != nil {
		t.Fatal(err)
	}
	if got := x.Grad.Data; got[0] != 8 || got[1] != 80 {
		t.Fatalf("grad = %v, want [8 80]", got)
	}
	// A second backward on a fresh tape accumulates into the leaf (gradient accumulation).
	tp.Reset()
	y = scale(tp, x, 2)
	if err := tp.BackwardWith(y, tensor.FromSlice([]float32{1, 1}, 2)); err != nil {
		t.Fatal(err)
	}
	if got := x.Grad.Data; got[0] != 10 || got[1] != 82 {
		t.Fatalf("accumulated grad = %v, want [10 82]", got)
	}
	x.ZeroGrad()
	if x.Grad.Data[0] != 0 {
		t.Fatal("ZeroGrad left a value")
	}
}

func TestNoGradAndConstStopGradients(t *testing.T) {
	tp := NewTape()
	x := NewParam("x", tensor.FromSlice([]float32{1}, 1))
	c := Const(tensor.FromSlice([]float32{4}, 1))
	var target *Var
	tp.NoGrad(func() { target = scale(tp, x, 2) })
	if target.RequiresGrad() || target.Creator() != nil {
		t.Fatal("output computed under NoGrad carries history")
	}
	if len(tp.Nodes()) != 0 {
		t.Fatalf("NoGrad recorded %d nodes", len(tp.Nodes()))
	}
	y := plus(tp, scale(tp, x, 1), plus(tp, target, c))
	if err := tp.BackwardWith(y, tensor.FromSlice([]float32{1}, 1)); err != nil {
		t.Fatal(err)
	}
	if x.Grad.Data[0] != 1 {
		t.Fatalf("grad through NoGrad branch leaked: %v", x.Grad.Data)
	}
	if c.Grad != nil {
		t.Fatal("a Const received a gradient")
	}
	if err := tp.BackwardWith(target, tensor.FromSlice([]float32{1}, 1)); err == nil {
		t.Fatal("Backward on a NoGrad value should fail")
	}
}

func TestBackwardRejectsNonScalarAndBadSeed(t *testing.T) {
	tp := NewTape()
	x := NewParam("x", tensor.FromSlice([]float32{1, 2}, 2))
	y := scale(tp, x, 2)
	if err := tp.Backward(y); err == nil {
		t.Fatal("Backward accepted a non-scalar loss")
	}
	if err := tp.BackwardWith(y, tensor.New(3)); err == nil {
		t.Fatal("BackwardWith accepted a seed of the wrong shape")
	}
}

func TestIntermediateGradsAreRecycledUnlessRetained(t *testing.T) {
	tp := NewTape()
	x := NewParam("x", tensor.FromSlice([]float32{1, 2}, 2))
	h := scale(tp, x, 2)
	kept := scale(tp, x, 3)
	tp.RetainGrad(kept)
	y := plus(tp, h, kept)
	if err := tp.BackwardWith(y, tensor.FromSlice([]float32{1, 1}, 2)); err != nil {
		t.Fatal(err)
	}
	if h.Grad != nil {
		t.Fatal("intermediate gradient kept after use")
	}
	if kept.Grad == nil || kept.Grad.Data[0] != 1 {
		t.Fatalf("retained gradient lost: %v", kept.Grad)
	}
	tp.Reset()
	if kept.Grad != nil {
		t.Fatal("Reset left a retained gradient attached")
	}
}

func TestResetReusesBuffers(t *testing.T) {
	tp := NewTape()
	x := NewParam("x", tensor.New(1024))
	step := func() {
		y := scale(tp, scale(tp, x, 2), 3)
		seed := tensor.New(1024)
		if err := tp.BackwardWith(y, seed); err != nil {
			t.Fatal(err)
		}
		tp.Reset()
	}
	step()
	parked := tp.Pool().ParkedBytes()
	if parked == 0 {
		t.Fatal("Reset returned nothing to the pool")
	}
	step()
	if got := tp.Pool().ParkedBytes(); got != parked {
		t.Fatalf("second step changed the pool from %d to %d bytes: buffers not reused", parked, got)
	}
}

func TestCatchConvertsOpErrors(t *testing.T) {
	err := Catch(func() { Failf("Conv2d", "input shape %v is not 4-D", []int{3}) })
	if err == nil || err.Error() != "Conv2d: input shape [3] is not 4-D" {
		t.Fatalf("Catch = %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Catch swallowed a non-OpError panic")
		}
	}()
	_ = Catch(func() { panic("real bug") })
}

func TestCheckGradCatchesWrongGradient(t *testing.T) {
	wrong := func(tp *Tape, in []*Var) *Var {
		x := in[0]
		out := tp.Alloc(x.Value.Shape...)
		for i, v := range x.Value.Data {
			out.Data[i] = v * v
		}
		return tp.Record("BadSquare", nil, out, []*Var{x}, func(o *Var) {
			g := tp.GradOf(x)
			for i, v := range o.Grad.Data {
				g.Data[i] += v * x.Value.Data[i] // missing the factor 2
			}
		})
	}
	err := CheckGrad(wrong, []*tensor.Tensor{tensor.FromSlice([]float32{0.5, -1.5, 2}, 3)}, GradCheck{})
	if err == nil {
		t.Fatal("CheckGrad accepted a wrong gradient")
	}
	right := func(tp *Tape, in []*Var) *Var { return scale(tp, in[0], 3) }
	if err := CheckGrad(right, []*tensor.Tensor{tensor.FromSlice([]float32{0.5, -1.5, 2}, 3)}, GradCheck{}); err != nil {
		t.Fatal(err)
	}
}

func TestGradForWrite(t *testing.T) {
	tp := NewTape()
	x := NewParam("x", tensor.FromSlice([]float32{1, 2}, 2))
	h := scale(tp, x, 1)
	g, fresh := tp.GradForWrite(h)
	if !fresh || g == nil {
		t.Fatal("first GradForWrite on an activation is not fresh")
	}
	if _, fresh := tp.GradForWrite(h); fresh {
		t.Fatal("second GradForWrite reported fresh: accumulated gradient would be overwritten")
	}
	if _, fresh := tp.GradForWrite(x); fresh {
		t.Fatal("a leaf's gradient must always accumulate")
	}
	if g, _ := tp.GradForWrite(Const(tensor.New(1))); g != nil {
		t.Fatal("a Const got a gradient buffer")
	}
}
