package nn

import (
	"math/rand/v2"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/tensor"
)

// Conv2d is torch.nn.Conv2d with a square kernel.
type Conv2d struct {
	Weight *autograd.Var // [out, in/groups, k, k]
	Bias   *autograd.Var // [out], nil without bias
	Params autograd.ConvParams
}

// NewConv2d builds a convolution with PyTorch's default initialisation
// (kaiming_uniform with a=sqrt(5), bias from U(±1/sqrt(fan_in))). Zero
// stride, dilation and groups in p mean 1.
func NewConv2d(in, out, k int, p autograd.ConvParams, bias bool, rng *rand.Rand) *Conv2d {
	g := max(p.Groups, 1)
	checkDims("Conv2d", in, out, k, g)
	if in%g != 0 || out%g != 0 {
		autograd.Failf("Conv2d", "in_channels %d and out_channels %d must be divisible by groups %d", in, out, g)
	}
	c := &Conv2d{Weight: autograd.NewParam("weight", tensor.New(out, in/g, k, k)), Params: p}
	var b *tensor.Tensor
	if bias {
		b = tensor.New(out)
		c.Bias = autograd.NewParam("bias", b)
	}
	mustInit(DefaultInit(c.Weight.Value, b, rng))
	return c
}

func (c *Conv2d) Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	return tp.Conv2d(x, c.Weight, c.Bias, c.Params)
}

func (c *Conv2d) CollectState(prefix string, s *State) {
	s.Params = append(s.Params, Param{Join(prefix, "weight"), c.Weight})
	if c.Bias != nil {
		s.Params = append(s.Params, Param{Join(prefix, "bias"), c.Bias})
	}
}

func (c *Conv2d) SetTraining(bool) {}

// BatchNorm is torch.nn.BatchNorm1d/2d (the op takes [N,C] and [N,C,H,W]
// alike): batch statistics and a running-average update in training mode,
// the running statistics in eval mode.
type BatchNorm struct {
	Weight, Bias            *autograd.Var // [C]; set both to nil for affine=False
	RunningMean, RunningVar *tensor.Tensor
	NumBatchesTracked       int64
	Momentum, Eps           float32

	eval bool
}

// NewBatchNorm builds a BatchNorm over c channels as PyTorch does: weight 1,
// bias 0, running mean 0 and variance 1, momentum 0.1, eps 1e-5, training
// mode.
func NewBatchNorm(c int) *BatchNorm {
	checkDims("BatchNorm", c)
	w, rv := tensor.New(c), tensor.New(c)
	Ones(w)
	Ones(rv)
	return &BatchNorm{
		Weight:      autograd.NewParam("weight", w),
		Bias:        autograd.NewParam("bias", tensor.New(c)),
		RunningMean: tensor.New(c),
		RunningVar:  rv,
		Momentum:    0.1,
		Eps:         1e-5,
	}
}

// Forward normalises x. In training mode it also updates the running
// statistics and counts the batch, even under Tape.NoGrad (as PyTorch does
// for a BYOL/MoCo target network in train mode).
func (b *BatchNorm) Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	if !b.eval {
		b.NumBatchesTracked++
	}
	return tp.BatchNorm(x, b.Weight, b.Bias, b.RunningMean, b.RunningVar, !b.eval, b.Momentum, b.Eps)
}

func (b *BatchNorm) CollectState(prefix string, s *State) {
	if b.Weight != nil {
		s.Params = append(s.Params, Param{Join(prefix, "weight"), b.Weight})
	}
	if b.Bias != nil {
		s.Params = append(s.Params, Param{Join(prefix, "bias"), b.Bias})
	}
	s.Buffers = append(s.Buffers,
		Buffer{Name: Join(prefix, "running_mean"), T: b.RunningMean},
		Buffer{Name: Join(prefix, "running_var"), T: b.RunningVar},
		Buffer{Name: Join(prefix, "num_batches_tracked"), Count: &b.NumBatchesTracked})
}

func (b *BatchNorm) SetTraining(on bool) { b.eval = !on }
