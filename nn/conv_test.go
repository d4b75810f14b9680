package nn

import (
	"math"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/tensor"
)

func TestConv2dGolden(t *testing.T) {
	for _, name := range []string{"conv_stride_pad", "conv_groups_nobias", "conv_dilation", "conv_1x1"} {
		t.Run(name, func(t *testing.T) {
			fx := loadFixture(t, name)
			s, p, d := fx.metaInt(t, "stride"), fx.metaInt(t, "pad"), fx.metaInt(t, "dilation")
			cp := autograd.ConvParams{StrideH: s, StrideW: s, PadH: p, PadW: p, DilationH: d, DilationW: d, Groups: fx.metaInt(t, "groups")}
			c := NewConv2d(fx.metaInt(t, "in"), fx.metaInt(t, "out"), fx.metaInt(t, "k"), cp, fx.metaBool("bias"), testRNG())
			fx.check(t, c, func(tp *autograd.Tape, in []*autograd.Var) *autograd.Var { return c.Forward(tp, in[0]) })
		})
	}
}

// TestBatchNormGolden covers BatchNorm1d and 2d in both modes, including
// the running statistics and num_batches_tracked after the pass.
func TestBatchNormGolden(t *testing.T) {
	for _, name := range []string{"bn2d_train", "bn2d_eval", "bn1d_train", "bn1d_eval"} {
		t.Run(name, func(t *testing.T) {
			fx := loadFixture(t, name)
			b := NewBatchNorm(fx.metaInt(t, "c"))
			fx.check(t, b, func(tp *autograd.Tape, in []*autograd.Var) *autograd.Var { return b.Forward(tp, in[0]) })
		})
	}
}

func TestMLPGolden(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  MLPConfig
	}{
		{"mlp_bn", MLPConfig{Dims: []int{6, 8, 3}, BatchNorm: true}},
		{"mlp_bn_last", MLPConfig{Dims: []int{6, 8, 7, 4}, BatchNorm: true, LastBatchNorm: true, NoBiasBeforeBN: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fx := loadFixture(t, c.name)
			m, err := NewMLP(c.cfg, testRNG())
			if err != nil {
				t.Fatal(err)
			}
			fx.check(t, m, func(tp *autograd.Tape, in []*autograd.Var) *autograd.Var { return m.Forward(tp, in[0]) })
		})
	}
}

func TestMLPConfigErrors(t *testing.T) {
	for _, cfg := range []MLPConfig{{Dims: []int{4}}, {Dims: []int{4, 0, 2}}, {Dims: []int{4, 2}, Activation: "swish"}} {
		if _, err := NewMLP(cfg, testRNG()); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	m, err := NewMLP(MLPConfig{Dims: []int{4, 8, 8, 2}, Activation: "gelu"}, testRNG())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range StateOf(m).Params {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, " "); got != "0.weight 0.bias 2.weight 2.bias 4.weight 4.bias" {
		t.Errorf("names %s", got)
	}
}

func TestBatchNormEvalUnderNoGradAndCounts(t *testing.T) {
	b := NewBatchNorm(2)
	x := tensor.FromSlice([]float32{1, 2, 3, 4, 5, 6}, 3, 2)
	tp := autograd.NewTape()
	tp.NoGrad(func() { b.Forward(tp, autograd.Const(x)) })
	// Train mode updates running stats even without gradients: mean of
	// channel 0 is 3, so running_mean = 0.9*0 + 0.1*3.
	if b.NumBatchesTracked != 1 || b.RunningMean.Data[0] < 0.3-1e-6 || b.RunningMean.Data[0] > 0.3+1e-6 {
		t.Errorf("count %d, running_mean %v", b.NumBatchesTracked, b.RunningMean.Data)
	}
	b.SetTraining(false)
	y := b.Forward(tp, autograd.Const(x))
	if b.NumBatchesTracked != 1 {
		t.Error("eval mode counted a batch")
	}
	// Eval: (x - 0.3)/sqrt(rv + eps) with rv = 0.9 + 0.1*4 (unbiased var of 1,3,5).
	want := (1 - 0.3) / float32(math.Sqrt(1.3+1e-5))
	if d := y.Value.Data[0] - want; d > 1e-5 || d < -1e-5 {
		t.Errorf("eval output %g, want %g", y.Value.Data[0], want)
	}
}
