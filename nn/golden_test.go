package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/weights"
)

// Golden fixtures from scripts/gen_nn_golden.py: each holds a PyTorch
// module's state_dict ("model."), its inputs, output, the backward seed r of
// sum(output*r), parameter and input gradients, and buffers after the pass.

const goldenTol = 1e-4

type fixture struct {
	name string
	f    *weights.File
}

func loadFixture(t *testing.T, name string) *fixture {
	t.Helper()
	f, err := weights.Read("testdata/" + name + ".safetensors")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{name, f}
}

func (fx *fixture) has(name string) bool { _, ok := fx.f.Tensors[name]; return ok }

func (fx *fixture) tensor(t *testing.T, name string) *tensor.Tensor {
	t.Helper()
	v, err := fx.f.Float32(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (fx *fixture) ints(t *testing.T, name string) ([]int, []int) {
	t.Helper()
	w := fx.f.Tensors[name]
	v, err := w.Int64()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out, w.Shape
}

func (fx *fixture) metaInt(t *testing.T, key string) int {
	t.Helper()
	v, err := strconv.Atoi(fx.f.Metadata[key])
	if err != nil {
		t.Fatalf("%s: metadata %s: %v", fx.name, key, err)
	}
	return v
}

func (fx *fixture) metaBool(key string) bool { return fx.f.Metadata[key] == "true" }

// model returns the state_dict tensors with the "model." prefix removed.
func (fx *fixture) model() map[string]*weights.Tensor {
	out := map[string]*weights.Tensor{}
	for n, v := range fx.f.Tensors {
		if k, ok := strings.CutPrefix(n, "model."); ok {
			out[k] = v
		}
	}
	return out
}

// inputs wraps the fixture's float inputs ("input", "input1", ...): as
// parameters when PyTorch recorded their gradient, else as constants.
func (fx *fixture) inputs(t *testing.T) []*autograd.Var {
	var vs []*autograd.Var
	for i := 0; ; i++ {
		key := "input"
		if i > 0 {
			key += strconv.Itoa(i)
		}
		if !fx.has(key) {
			return vs
		}
		if !fx.f.Tensors[key].DType.IsFloat() {
			vs = append(vs, nil) // integer inputs (ids, masks) are read by the case itself
			continue
		}
		v := fx.tensor(t, key)
		if fx.has(strings.Replace(key, "input", "input_grad", 1)) {
			vs = append(vs, autograd.NewParam(key, v))
		} else {
			vs = append(vs, autograd.Const(v))
		}
	}
}

func maxAbsDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

func (fx *fixture) expect(t *testing.T, what string, got *tensor.Tensor, key string) {
	t.Helper()
	want := fx.tensor(t, key)
	if got == nil {
		t.Errorf("%s: no value (PyTorch has %v)", what, want.Shape)
		return
	}
	if !tensor.SameShape(got.Shape, want.Shape) {
		t.Errorf("%s: shape %v, PyTorch %v", what, got.Shape, want.Shape)
		return
	}
	if d := maxAbsDiff(got.Data, want.Data); d > goldenTol || math.IsNaN(d) {
		t.Errorf("%s: max abs diff %.3g from PyTorch", what, d)
	}
}

// check loads the fixture into m, runs fwd in the fixture's mode, and
// compares output, gradients and updated buffers with PyTorch's.
func (fx *fixture) check(t *testing.T, m Module, fwd func(tp *autograd.Tape, in []*autograd.Var) *autograd.Var) {
	t.Helper()
	if err := LoadState(m, fx.model(), true); err != nil {
		t.Fatalf("%s: %v", fx.name, err)
	}
	m.SetTraining(fx.metaBool("train"))
	in := fx.inputs(t)
	tp := autograd.NewTape()
	var out *autograd.Var
	if err := autograd.Catch(func() { out = fwd(tp, in) }); err != nil {
		t.Fatalf("%s: forward: %v", fx.name, err)
	}
	fx.expect(t, "output", out.Value, "output")
	if err := tp.BackwardWith(out, fx.tensor(t, "seed")); err != nil {
		t.Fatal(err)
	}
	s := StateOf(m)
	for _, p := range s.Params {
		key := "grad." + p.Name
		if !fx.has(key) {
			t.Errorf("PyTorch has no gradient for %s", p.Name)
			continue
		}
		fx.expect(t, "grad "+p.Name, p.Var.Grad, key)
	}
	for i, v := range in {
		if v == nil || !v.RequiresGrad() {
			continue
		}
		key := "input_grad"
		if i > 0 {
			key += strconv.Itoa(i)
		}
		fx.expect(t, "grad "+key, v.Grad, key)
	}
	for _, b := range s.Buffers {
		key := "after." + b.Name
		if b.Count != nil {
			want, _ := fx.ints(t, key)
			if int64(want[0]) != *b.Count {
				t.Errorf("%s = %d, PyTorch %d", b.Name, *b.Count, want[0])
			}
			continue
		}
		fx.expect(t, b.Name+" after forward", b.T, key)
	}
	tp.Reset()
}

func testRNG() *rand.Rand { return rand.New(rand.NewPCG(11, 12)) }

func TestLinearGolden(t *testing.T) {
	for _, name := range []string{"linear", "linear_nobias"} {
		t.Run(name, func(t *testing.T) {
			fx := loadFixture(t, name)
			l := NewLinear(fx.metaInt(t, "in"), fx.metaInt(t, "out"), fx.metaBool("bias"), testRNG())
			fx.check(t, l, func(tp *autograd.Tape, in []*autograd.Var) *autograd.Var { return l.Forward(tp, in[0]) })
		})
	}
}

func TestLayerNormGolden(t *testing.T) {
	fx := loadFixture(t, "layernorm")
	eps, _ := strconv.ParseFloat(fx.f.Metadata["eps"], 64)
	l := NewLayerNorm(fx.metaInt(t, "d"), float32(eps))
	fx.check(t, l, func(tp *autograd.Tape, in []*autograd.Var) *autograd.Var { return l.Forward(tp, in[0]) })
}

func TestEmbeddingGolden(t *testing.T) {
	fx := loadFixture(t, "embedding")
	e := NewEmbedding(fx.metaInt(t, "n"), fx.metaInt(t, "d"), testRNG())
	ids, shape := fx.ints(t, "input")
	fx.check(t, e, func(tp *autograd.Tape, _ []*autograd.Var) *autograd.Var { return e.Forward(tp, ids, shape) })
}

func TestSequentialGolden(t *testing.T) {
	fx := loadFixture(t, "mlp_relu_gelu")
	rng := testRNG()
	s := NewSequential(NewLinear(6, 8, true, rng), ReLU{}, NewLinear(8, 8, true, rng), GELU{}, NewLinear(8, 3, true, rng))
	fx.check(t, s, func(tp *autograd.Tape, in []*autograd.Var) *autograd.Var { return s.Forward(tp, in[0]) })
}

func TestMultiheadAttentionGolden(t *testing.T) {
	t.Run("self attention with key padding mask", func(t *testing.T) {
		fx := loadFixture(t, "mha_self_padmask")
		m := NewMultiheadAttention(fx.metaInt(t, "embed"), fx.metaInt(t, "heads"), fx.metaBool("bias"), testRNG())
		pad, shape := fx.ints(t, "input1")
		flags := make([]bool, len(pad))
		for i, p := range pad {
			flags[i] = p != 0
		}
		mask := KeyPaddingMask(flags, shape[0], shape[1])
		fx.check(t, m, func(tp *autograd.Tape, in []*autograd.Var) *autograd.Var {
			return m.Forward(tp, in[0], in[0], in[0], mask)
		})
	})
	t.Run("cross attention with causal attn_mask", func(t *testing.T) {
		fx := loadFixture(t, "mha_cross_attnmask")
		m := NewMultiheadAttention(fx.metaInt(t, "embed"), fx.metaInt(t, "heads"), fx.metaBool("bias"), testRNG())
		fx.check(t, m, func(tp *autograd.Tape, in []*autograd.Var) *autograd.Var {
			return m.Forward(tp, in[0], in[1], in[2], in[3])
		})
	})
}

// TestAttentionMatchesMHA checks the shared core against the layer with
// identity projections: MHA with in_proj = I and out_proj = I is exactly
// Attention on the raw inputs.
func TestAttentionMatchesMHA(t *testing.T) {
	rng := testRNG()
	m := NewMultiheadAttention(6, 3, false, rng)
	for _, w := range []*tensor.Tensor{m.InProjWeight.Value, m.OutProj.Weight.Value} {
		w.Zero()
		for i := range w.Shape[0] {
			w.Data[i*w.Shape[1]+i%w.Shape[1]] = 1
		}
	}
	q, k := tensor.New(2, 4, 6), tensor.New(2, 5, 6)
	Normal(q, 0, 1, rng)
	Normal(k, 0, 1, rng)
	tp := autograd.NewTape()
	qv, kv := autograd.Const(q), autograd.Const(k)
	a := Attention(tp, qv, kv, kv, 3, nil)
	b := m.Forward(tp, qv, kv, kv, nil)
	if d := maxAbsDiff(a.Value.Data, b.Value.Data); d > 1e-6 {
		t.Errorf("Attention and identity MHA differ by %g", d)
	}
	err := autograd.Catch(func() { Attention(tp, qv, kv, kv, 4, nil) })
	if err == nil || !strings.Contains(err.Error(), "heads") {
		t.Errorf("bad head count: %v", err)
	}
}

func TestAttentionGradCheck(t *testing.T) {
	mask := tensor.New(2, 1, 1, 3)
	mask.Data[2] = -1e9 // sequence 0 drops its last key
	for _, heads := range []int{1, 2} {
		rng := testRNG()
		mk := func(s ...int) *tensor.Tensor { x := tensor.New(s...); Normal(x, 0, 1, rng); return x }
		err := autograd.CheckGrad(func(tp *autograd.Tape, in []*autograd.Var) *autograd.Var {
			return Attention(tp, in[0], in[1], in[2], heads, autograd.Const(mask))
		}, []*tensor.Tensor{mk(2, 2, 4), mk(2, 3, 4), mk(2, 3, 4)}, autograd.GradCheck{})
		if err != nil {
			t.Errorf("heads=%d: %v", heads, err)
		}
	}
}

func TestStateNames(t *testing.T) {
	rng := testRNG()
	s := NewSequential(NewLinear(2, 3, true, rng), ReLU{}, NewLayerNorm(3, 1e-5), NewDropout(0.1, rng), NewLinear(3, 1, false, rng))
	var names []string
	for _, p := range StateOf(s).Params {
		names = append(names, p.Name)
	}
	want := "0.weight 0.bias 2.weight 2.bias 4.weight"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("names %q, want PyTorch's %q", got, want)
	}
	mha := NewMultiheadAttention(4, 2, true, rng)
	names = names[:0]
	for _, p := range StateOf(mha).Params {
		names = append(names, p.Name)
	}
	if got := fmt.Sprint(names); got != "[in_proj_weight in_proj_bias out_proj.weight out_proj.bias]" {
		t.Errorf("MHA names %s", got)
	}
}

func TestDropoutLayer(t *testing.T) {
	d := NewDropout(0.5, testRNG())
	x := tensor.New(10000)
	Ones(x)
	tp := autograd.NewTape()
	y := d.Forward(tp, autograd.Const(x))
	zeros, sum := 0, 0.0
	for _, v := range y.Value.Data {
		if v == 0 {
			zeros++
		}
		sum += float64(v)
	}
	if zeros < 4700 || zeros > 5300 || math.Abs(sum/1e4-1) > 0.06 {
		t.Errorf("training dropout: %d zeros, mean %g", zeros, sum/1e4)
	}
	d.SetTraining(false)
	if y := d.Forward(tp, autograd.Const(x)); y.Value.Data[0] != 1 || y.Value.Data[9999] != 1 {
		t.Error("eval dropout is not the identity")
	}
}

func TestLayerConstructorsRejectBadSizes(t *testing.T) {
	for name, f := range map[string]func(){
		"linear":    func() { NewLinear(0, 3, true, testRNG()) },
		"layernorm": func() { NewLayerNorm(-1, 1e-5) },
		"mha":       func() { NewMultiheadAttention(6, 4, true, testRNG()) },
	} {
		if err := autograd.Catch(f); err == nil {
			t.Errorf("%s: bad size accepted", name)
		}
	}
}
