package autograd

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/tensor"
)

func convTestRand(rng *rand.Rand, shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	for i := range t.Data {
		t.Data[i] = float32(rng.NormFloat64())
	}
	return t
}

// distinctRand fills a tensor with a shuffled ladder of values 0.1 apart,
// so that a finite-difference step of 1e-2 never changes a max-pool argmax.
func distinctRand(rng *rand.Rand, shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	for i, p := range rng.Perm(len(t.Data)) {
		t.Data[i] = float32(p)*0.1 - float32(len(t.Data))*0.05
	}
	return t
}

func TestConv2dGrad(t *testing.T) {
	cases := []struct {
		name   string
		x, w   []int
		p      ConvParams
		bias   bool
		frozen bool // weight given as a constant: only x and b get gradients
	}{
		{"3x3 pad1 bias", []int{2, 3, 5, 4}, []int{4, 3, 3, 3}, ConvParams{PadH: 1, PadW: 1}, true, false},
		{"3x3 stride2", []int{2, 2, 7, 6}, []int{3, 2, 3, 3}, ConvParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}, false, false},
		{"groups2", []int{1, 4, 5, 5}, []int{6, 2, 3, 3}, ConvParams{PadH: 1, PadW: 1, Groups: 2}, true, false},
		{"depthwise", []int{2, 3, 4, 5}, []int{3, 1, 3, 3}, ConvParams{PadH: 1, PadW: 1, Groups: 3}, false, false},
		{"dilation2", []int{1, 2, 7, 7}, []int{2, 2, 3, 3}, ConvParams{PadH: 2, PadW: 2, DilationH: 2, DilationW: 2}, true, false},
		{"1x1", []int{2, 3, 3, 4}, []int{5, 3, 1, 1}, ConvParams{}, true, false},
		{"1x1 stride2", []int{2, 3, 6, 6}, []int{2, 3, 1, 1}, ConvParams{StrideH: 2, StrideW: 2}, false, false},
		{"7x7/2 stem", []int{1, 3, 12, 10}, []int{2, 3, 7, 7}, ConvParams{StrideH: 2, StrideW: 2, PadH: 3, PadW: 3}, false, false},
		{"3x1 asymmetric", []int{1, 2, 6, 5}, []int{3, 2, 3, 1}, ConvParams{StrideH: 2, PadH: 1}, true, false},
		{"frozen weight", []int{2, 2, 4, 4}, []int{3, 2, 3, 3}, ConvParams{PadH: 1, PadW: 1}, true, true},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 11))
			x, w := convTestRand(rng, c.x...), convTestRand(rng, c.w...)
			inputs := []*tensor.Tensor{x, w}
			if c.frozen {
				inputs = []*tensor.Tensor{x}
			}
			if c.bias {
				inputs = append(inputs, convTestRand(rng, c.w[0]))
			}
			f := func(tp *Tape, in []*Var) *Var {
				xv, rest := in[0], in[1:]
				wv := Const(w)
				if !c.frozen {
					wv, rest = rest[0], rest[1:]
				}
				var bv *Var
				if c.bias {
					bv = rest[0]
				}
				return tp.Conv2d(xv, wv, bv, c.p)
			}
			if err := CheckGrad(f, inputs, GradCheck{Seed: uint64(i)}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestConv2dGradAccumulates uses x and w in two convolutions, so the second
// backward must add to gradients the first one wrote.
func TestConv2dGradAccumulates(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	x, w := convTestRand(rng, 2, 3, 5, 5), convTestRand(rng, 3, 3, 3, 3)
	f := func(tp *Tape, in []*Var) *Var {
		a := tp.Conv2d(in[0], in[1], nil, ConvParams{PadH: 1, PadW: 1})
		b := tp.Conv2d(in[0], in[1], nil, ConvParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1})
		return tp.Conv2d(a, in[1], nil, ConvParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilationH: 1}).addForTest(tp, b)
	}
	if err := CheckGrad(f, []*tensor.Tensor{x, w}, GradCheck{}); err != nil {
		t.Fatal(err)
	}
}

// addForTest sums two same-shaped Vars with a hand-written op, so that this
// test depends on nothing but the tape.
func (v *Var) addForTest(tp *Tape, u *Var) *Var {
	out := tp.Alloc(v.Value.Shape...)
	for i := range out.Data {
		out.Data[i] = v.Value.Data[i] + u.Value.Data[i]
	}
	return tp.Record("AddForTest", nil, out, []*Var{v, u}, func(o *Var) {
		for _, in := range []*Var{v, u} {
			if g := tp.GradOf(in); g != nil {
				for i, d := range o.Grad.Data {
					g.Data[i] += d
				}
			}
		}
	})
}

func TestPoolingGrad(t *testing.T) {
	cases := []struct {
		op                  string
		shape               []int
		kernel, stride, pad int
	}{
		{"max", []int{2, 2, 7, 6}, 3, 2, 1},
		{"max", []int{1, 3, 4, 4}, 2, 2, 0},
		{"max", []int{1, 2, 5, 4}, 3, 1, 1},
		{"avg", []int{2, 2, 7, 6}, 3, 2, 1},
		{"avg", []int{1, 3, 4, 4}, 2, 2, 0},
		{"avg", []int{1, 2, 5, 4}, 3, 1, 1},
		{"global", []int{2, 3, 3, 4}, 0, 0, 0},
		{"global", []int{3, 2, 1, 1}, 0, 0, 0},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%s %v k%d s%d p%d", c.op, c.shape, c.kernel, c.stride, c.pad), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 12))
			x := distinctRand(rng, c.shape...)
			f := func(tp *Tape, in []*Var) *Var {
				switch c.op {
				case "max":
					return tp.MaxPool2d(in[0], c.kernel, c.stride, c.pad)
				case "avg":
					return tp.AvgPool2d(in[0], c.kernel, c.stride, c.pad)
				}
				return tp.GlobalAvgPool(in[0])
			}
			if err := CheckGrad(f, []*tensor.Tensor{x}, GradCheck{Seed: uint64(i)}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestBatchNormGrad(t *testing.T) {
	cases := []struct {
		name     string
		shape    []int
		training bool
		affine   bool
		stats    bool
	}{
		{"2d train", []int{3, 2, 3, 4}, true, true, true},
		{"2d eval", []int{3, 2, 3, 4}, false, true, true},
		{"1d train", []int{6, 3}, true, true, true},
		{"1d eval", []int{6, 3}, false, true, true},
		{"no affine train", []int{2, 3, 2, 3}, true, false, true},
		{"no running stats", []int{4, 2, 2, 2}, false, true, false},
		{"3d input", []int{3, 2, 5}, true, true, true},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 13))
			ch := c.shape[1]
			x := convTestRand(rng, c.shape...)
			inputs := []*tensor.Tensor{x}
			if c.affine {
				w, b := convTestRand(rng, ch), convTestRand(rng, ch)
				inputs = append(inputs, w, b)
			}
			var rm, rv *tensor.Tensor
			if c.stats {
				rm, rv = convTestRand(rng, ch), tensor.New(ch)
				for j := range rv.Data {
					rv.Data[j] = 0.5 + rng.Float32()
				}
			}
			f := func(tp *Tape, in []*Var) *Var {
				var w, b *Var
				if c.affine {
					w, b = in[1], in[2]
				}
				// Copies, so that every probe starts from the same running
				// statistics (training mode updates them).
				var m, v *tensor.Tensor
				if c.stats {
					m, v = rm.Clone(), rv.Clone()
				}
				return tp.BatchNorm(in[0], w, b, m, v, c.training, 0.1, 1e-5)
			}
			if err := CheckGrad(f, inputs, GradCheck{Seed: uint64(i)}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestConvPoolBatchNormAttrs(t *testing.T) {
	tp := NewTape()
	rng := rand.New(rand.NewPCG(1, 1))
	x := NewParam("x", convTestRand(rng, 1, 4, 8, 8))
	w := NewParam("w", convTestRand(rng, 6, 2, 3, 3))
	b := NewParam("b", convTestRand(rng, 6))
	y := tp.Conv2d(x, w, b, ConvParams{StrideH: 2, StrideW: 1, PadH: 1, PadW: 2, DilationH: 1, DilationW: 2, Groups: 2})
	rm, rv := tensor.New(6), tensor.New(6)
	rv.Fill(1)
	y = tp.BatchNorm(y, nil, b, rm, rv, true, 0.1, 1e-5)
	y = tp.MaxPool2d(y, 2, 2, 1)
	y = tp.AvgPool2d(y, 3, 1, 1)
	tp.GlobalAvgPool(y)
	want := []struct {
		op    string
		attrs map[string]any
		nIn   int
	}{
		{"Conv2d", map[string]any{"strides": []int{2, 1}, "pads": []int{1, 2, 1, 2}, "dilations": []int{1, 2}, "group": 2, "kernel_shape": []int{3, 3}, "has_bias": true}, 3},
		{"BatchNorm", map[string]any{"epsilon": float32(1e-5), "momentum": float32(0.1), "training_mode": true, "has_weight": false, "has_bias": true, "inputs": []string{"X", "B", "mean", "var"}}, 4},
		{"MaxPool2d", map[string]any{"kernel_shape": []int{2, 2}, "strides": []int{2, 2}, "pads": []int{1, 1, 1, 1}, "ceil_mode": 0}, 1},
		{"AvgPool2d", map[string]any{"kernel_shape": []int{3, 3}, "strides": []int{1, 1}, "pads": []int{1, 1, 1, 1}, "ceil_mode": 0, "count_include_pad": 1}, 1},
		{"GlobalAvgPool", map[string]any{"flatten": true}, 1},
	}
	nodes := tp.Nodes()
	if len(nodes) != len(want) {
		t.Fatalf("%d nodes recorded, want %d", len(nodes), len(want))
	}
	for i, w := range want {
		n := nodes[i]
		if n.Op != w.op || !reflect.DeepEqual(n.Attrs, w.attrs) || len(n.Inputs) != w.nIn {
			t.Errorf("node %d: %s %v with %d inputs, want %s %v with %d", i, n.Op, n.Attrs, len(n.Inputs), w.op, w.attrs, w.nIn)
		}
	}
	if bn := nodes[1]; bn.Inputs[2].Value != rm || bn.Inputs[3].Value != rv {
		t.Error("BatchNorm does not record the running statistics tensors as inputs")
	}
}

func TestConvPoolBatchNormShapeErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	v := func(shape ...int) *Var { return NewParam("", convTestRand(rng, shape...)) }
	cases := []struct {
		name string
		run  func(tp *Tape)
		msg  string
	}{
		{"conv 3-D x", func(tp *Tape) { tp.Conv2d(v(1, 3, 4), v(2, 3, 3, 3), nil, ConvParams{}) }, "Conv2d: x shape [1 3 4] is not 4-D"},
		{"conv channels", func(tp *Tape) { tp.Conv2d(v(1, 3, 4, 4), v(2, 2, 3, 3), nil, ConvParams{}) }, "expects 2 input channels"},
		{"conv groups", func(tp *Tape) { tp.Conv2d(v(1, 4, 4, 4), v(3, 2, 3, 3), nil, ConvParams{Groups: 2}) }, "do not divide into 2 groups"},
		{"conv bias", func(tp *Tape) { tp.Conv2d(v(1, 3, 4, 4), v(2, 3, 3, 3), v(3), ConvParams{}) }, "bias shape [3]"},
		{"conv too small", func(tp *Tape) { tp.Conv2d(v(1, 3, 2, 2), v(2, 3, 3, 3), nil, ConvParams{}) }, "smaller than the dilated"},
		{"maxpool pad", func(tp *Tape) { tp.MaxPool2d(v(1, 1, 4, 4), 2, 2, 2) }, "MaxPool2d: "},
		{"avgpool 2-D", func(tp *Tape) { tp.AvgPool2d(v(4, 4), 2, 2, 0) }, "AvgPool2d: x shape [4 4]"},
		{"gap 3-D", func(tp *Tape) { tp.GlobalAvgPool(v(2, 3, 4)) }, "GlobalAvgPool: x shape"},
		{"bn weight", func(tp *Tape) { tp.BatchNorm(v(2, 3), v(2), nil, nil, nil, true, 0.1, 1e-5) }, "weight shape [2]"},
		{"bn one value", func(tp *Tape) { tp.BatchNorm(v(1, 3, 1, 1), nil, nil, nil, nil, true, 0.1, 1e-5) }, "more than 1 value per channel"},
		{"bn half stats", func(tp *Tape) { tp.BatchNorm(v(2, 3), nil, nil, tensor.New(3), nil, true, 0.1, 1e-5) }, "both running_mean and running_var"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Catch(func() { c.run(NewTape()) })
			if err == nil || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %v, want one containing %q", err, c.msg)
			}
		})
	}
}
