package zoo

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
)

// ResNetConfig describes a ResNet-18/34/50. Zero values pick the defaults
// noted on each field.
type ResNetConfig struct {
	// Depth is 18, 34 (basic blocks) or 50 (bottleneck blocks).
	Depth int
	// Stem is "imagenet" (7x7/2 conv then 3x3/2 max pool; the default) or
	// "cifar" (3x3/1 conv, no pool), the variant SSL recipes use on small
	// images.
	Stem string
	// Width scales the four stage widths 64/128/256/512 (rounded to the
	// nearest integer, at least 1). 0 means 1.
	Width float64
	// InChannels is the number of input channels; 0 means 3.
	InChannels int
	// NumClasses sizes the fc classifier. 0 drops it: Forward then returns
	// the pooled features.
	NumClasses int
	// ZeroInitResidual starts the last BatchNorm of each block at weight 0,
	// so each block begins as the identity (torchvision's option of the
	// same name).
	ZeroInitResidual bool
	// StemPadding is conv1's zero padding; 0 means the stem's own (3 for
	// "imagenet", 1 for "cifar"). solo-learn's CIFAR ResNets pad their
	// 3x3 conv1 by 2 (solo/methods/base.py), which grows every feature
	// map by 2 pixels, so their weights only give their features with it.
	StemPadding int `json:",omitempty"`
}

func (c ResNetConfig) withDefaults() (ResNetConfig, error) {
	if c.Stem == "" {
		c.Stem = "imagenet"
	}
	if c.Width == 0 {
		c.Width = 1
	}
	if c.InChannels == 0 {
		c.InChannels = 3
	}
	switch {
	case c.Depth != 18 && c.Depth != 34 && c.Depth != 50:
		return c, fmt.Errorf("resnet: depth %d not supported (18, 34 or 50)", c.Depth)
	case c.Stem != "imagenet" && c.Stem != "cifar":
		return c, fmt.Errorf("resnet: stem %q not supported (\"imagenet\" or \"cifar\")", c.Stem)
	case !(c.Width > 0) || math.IsInf(c.Width, 0):
		return c, fmt.Errorf("resnet: width multiplier %g must be positive", c.Width)
	case c.InChannels < 0:
		return c, fmt.Errorf("resnet: %d input channels", c.InChannels)
	case c.NumClasses < 0:
		return c, fmt.Errorf("resnet: %d classes", c.NumClasses)
	case c.StemPadding < 0:
		return c, fmt.Errorf("resnet: stem padding %d", c.StemPadding)
	}
	return c, nil
}

// scaledWidth applies a width multiplier to a base channel count.
func scaledWidth(base int, width float64) int {
	return max(1, int(math.Floor(float64(base)*width+0.5)))
}

// ResNet is torchvision's ResNet (v1.5: the stride sits on the 3x3 conv of
// a bottleneck) with state_dict names conv1, bn1, layer1.0.conv1, ...,
// layer2.0.downsample.0/1, fc.
type ResNet struct {
	Config ResNetConfig
	Conv1  *nn.Conv2d
	BN1    *nn.BatchNorm
	// Layers are the four stages, layer1 to layer4.
	Layers [4][]ResidualBlock
	// FC is nil when Config.NumClasses is 0.
	FC *nn.Linear

	featureDim int
}

// ResidualBlock is a BasicBlock or a Bottleneck.
type ResidualBlock interface {
	nn.Module
	Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var
}

// resnetBlocks is the number of residual blocks in each of the four stages.
var resnetBlocks = map[int][4]int{18: {2, 2, 2, 2}, 34: {3, 4, 6, 3}, 50: {3, 4, 6, 3}}

// NewResNet builds a ResNet initialised as torchvision does: convolutions
// Kaiming-normal (fan_out, ReLU gain), BatchNorm weight 1 and bias 0, fc
// with PyTorch's Linear default.
func NewResNet(cfg ResNetConfig, rng *rand.Rand) (*ResNet, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var widths [4]int
	for i, base := range []int{64, 128, 256, 512} {
		widths[i] = scaledWidth(base, cfg.Width)
	}
	m := &ResNet{Config: cfg}
	if cfg.Stem == "cifar" {
		pad := cmp.Or(cfg.StemPadding, 1)
		m.Conv1 = nn.NewConv2d(cfg.InChannels, widths[0], 3, autograd.ConvParams{PadH: pad, PadW: pad}, false, rng)
	} else {
		pad := cmp.Or(cfg.StemPadding, 3)
		m.Conv1 = nn.NewConv2d(cfg.InChannels, widths[0], 7, autograd.ConvParams{StrideH: 2, StrideW: 2, PadH: pad, PadW: pad}, false, rng)
	}
	m.BN1 = nn.NewBatchNorm(widths[0])
	counts := resnetBlocks[cfg.Depth]
	bottleneck := cfg.Depth == 50
	in := widths[0]
	for stage := range 4 {
		stride := 2
		if stage == 0 {
			stride = 1
		}
		for j := range counts[stage] {
			s := 1
			if j == 0 {
				s = stride
			}
			var b ResidualBlock
			if bottleneck {
				b = newBottleneck(in, widths[stage], s, rng)
				in = widths[stage] * 4
			} else {
				b = newBasicBlock(in, widths[stage], s, rng)
				in = widths[stage]
			}
			m.Layers[stage] = append(m.Layers[stage], b)
		}
	}
	m.featureDim = in
	if cfg.NumClasses > 0 {
		m.FC = nn.NewLinear(in, cfg.NumClasses, true, rng)
	}
	if err := m.initWeights(rng); err != nil {
		return nil, err
	}
	return m, nil
}

// initWeights applies torchvision's ResNet initialisation.
func (m *ResNet) initWeights(rng *rand.Rand) error {
	s := &nn.State{}
	m.CollectState("", s)
	gain := nn.LeakyReLUGain(0)
	for _, p := range s.Params {
		if w := p.Var.Value; len(w.Shape) == 4 {
			if err := nn.KaimingNormal(w, gain, nn.FanOut, rng); err != nil {
				return fmt.Errorf("resnet: init %s: %w", p.Name, err)
			}
		}
	}
	if m.Config.ZeroInitResidual {
		for _, stage := range m.Layers {
			for _, b := range stage {
				switch b := b.(type) {
				case *BasicBlock:
					b.BN2.Weight.Value.Zero()
				case *Bottleneck:
					b.BN3.Weight.Value.Zero()
				}
			}
		}
	}
	return nil
}

// FeatureDim is the width of the pooled features (512*Width, times 4 for
// ResNet-50).
func (m *ResNet) FeatureDim() int { return m.featureDim }

// OutputDim is the width of Forward's output: NumClasses, or FeatureDim
// without a classifier.
func (m *ResNet) OutputDim() int {
	if m.FC != nil {
		return m.Config.NumClasses
	}
	return m.featureDim
}

// Features maps images [N, InChannels, H, W] to pooled features
// [N, FeatureDim], skipping the classifier.
func (m *ResNet) Features(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	return tp.GlobalAvgPool(m.FeatureMap(tp, x))
}

// FeatureMap is the last stage's output before the pool, [N, FeatureDim,
// h, w]: what dense heads (Colorization's) predict from.
func (m *ResNet) FeatureMap(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	if s := x.Shape(); len(s) != 4 || s[1] != m.Config.InChannels {
		autograd.Failf("ResNet", "input shape %v, want [N, %d, H, W]", s, m.Config.InChannels)
	}
	x = convBNReLU(tp, m.Conv1, m.BN1, x)
	if m.Config.Stem == "imagenet" {
		p := tp.MaxPool2d(x, 3, 2, 1)
		release(tp, p, x)
		x = p
	}
	for _, stage := range m.Layers {
		for _, b := range stage {
			y := b.Forward(tp, x)
			release(tp, y, x)
			x = y
		}
	}
	return x
}

// release hands the buffers of values whose last reader has run back to
// the tape's pool, when nothing is recorded (evaluation, target networks):
// the next op then writes into memory that is still in cache, and a
// forward holds a few activations instead of all of them. Buffers shared
// with keep, and those the tape does not own (inputs, weights), stay.
func release(tp *autograd.Tape, keep *autograd.Var, dead ...*autograd.Var) {
	if tp.Recording() {
		return
	}
	k := tensor.BufferID(keep.Value.Data)
	for _, d := range dead {
		if tensor.BufferID(d.Value.Data) != k {
			tp.Recycle(d.Value.Data)
		}
	}
}

// Forward maps images to class logits [N, NumClasses], or to pooled
// features [N, FeatureDim] when there is no classifier.
func (m *ResNet) Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	x = m.Features(tp, x)
	if m.FC != nil {
		x = m.FC.Forward(tp, x)
	}
	return x
}

// CollectState implements nn.Module with torchvision's names.
func (m *ResNet) CollectState(prefix string, s *nn.State) {
	m.Conv1.CollectState(nn.Join(prefix, "conv1"), s)
	m.BN1.CollectState(nn.Join(prefix, "bn1"), s)
	for i, stage := range m.Layers {
		for j, b := range stage {
			b.CollectState(nn.Join(prefix, "layer"+strconv.Itoa(i+1)+"."+strconv.Itoa(j)), s)
		}
	}
	if m.FC != nil {
		m.FC.CollectState(nn.Join(prefix, "fc"), s)
	}
}

// SetTraining implements nn.Module: BatchNorm uses batch statistics and
// updates its running ones in training mode.
func (m *ResNet) SetTraining(on bool) {
	m.BN1.SetTraining(on)
	for _, stage := range m.Layers {
		for _, b := range stage {
			b.SetTraining(on)
		}
	}
	if m.FC != nil {
		m.FC.SetTraining(on)
	}
}

// Downsample is the 1x1 conv + BatchNorm shortcut of a block that changes
// shape (torchvision's downsample.0 and downsample.1).
type Downsample struct {
	Conv *nn.Conv2d
	BN   *nn.BatchNorm
}

func newDownsample(in, out, stride int, rng *rand.Rand) *Downsample {
	return &Downsample{
		Conv: nn.NewConv2d(in, out, 1, autograd.ConvParams{StrideH: stride, StrideW: stride}, false, rng),
		BN:   nn.NewBatchNorm(out),
	}
}

// Forward applies the shortcut.
func (d *Downsample) Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	return convBN(tp, d.Conv, d.BN, x)
}

// CollectState implements nn.Module.
func (d *Downsample) CollectState(prefix string, s *nn.State) {
	d.Conv.CollectState(nn.Join(prefix, "0"), s)
	d.BN.CollectState(nn.Join(prefix, "1"), s)
}

// SetTraining implements nn.Module.
func (d *Downsample) SetTraining(on bool) { d.BN.SetTraining(on) }

// BasicBlock is two 3x3 convolutions with a residual connection
// (ResNet-18/34).
type BasicBlock struct {
	Conv1, Conv2 *nn.Conv2d
	BN1, BN2     *nn.BatchNorm
	Downsample   *Downsample // nil when the shortcut is the identity
}

func newBasicBlock(in, planes, stride int, rng *rand.Rand) *BasicBlock {
	b := &BasicBlock{
		Conv1: nn.NewConv2d(in, planes, 3, autograd.ConvParams{StrideH: stride, StrideW: stride, PadH: 1, PadW: 1}, false, rng),
		BN1:   nn.NewBatchNorm(planes),
		Conv2: nn.NewConv2d(planes, planes, 3, autograd.ConvParams{PadH: 1, PadW: 1}, false, rng),
		BN2:   nn.NewBatchNorm(planes),
	}
	if stride != 1 || in != planes {
		b.Downsample = newDownsample(in, planes, stride, rng)
	}
	return b
}

// Forward computes relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).
func (b *BasicBlock) Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	r1 := convBNReLU(tp, b.Conv1, b.BN1, x)
	n2 := convBN(tp, b.Conv2, b.BN2, r1)
	release(tp, n2, r1)
	return residual(tp, b.Downsample, n2, x)
}

// The ReLUs after BatchNorm and after the residual Add run in place
// (torchvision's inplace=True): neither op reads its own output backwards.

// convBN is bn(conv(x)), the convolution's output released.
func convBN(tp *autograd.Tape, conv *nn.Conv2d, bn *nn.BatchNorm, x *autograd.Var) *autograd.Var {
	c := conv.Forward(tp, x)
	y := bn.Forward(tp, c)
	release(tp, y, c)
	return y
}

// convBNReLU is relu(bn(conv(x))), the ReLU in place.
func convBNReLU(tp *autograd.Tape, conv *nn.Conv2d, bn *nn.BatchNorm, x *autograd.Var) *autograd.Var {
	return tp.ReLUInPlace(convBN(tp, conv, bn, x))
}

// residual is a block's relu(out + shortcut(x)); out and the shortcut's
// value are dead after it (x is the caller's).
func residual(tp *autograd.Tape, down *Downsample, out, x *autograd.Var) *autograd.Var {
	short := x
	if down != nil {
		short = down.Forward(tp, x)
	}
	sum := tp.Add(out, short)
	y := tp.ReLUInPlace(sum)
	if short != x {
		release(tp, y, short)
	}
	release(tp, y, out, sum)
	return y
}

// CollectState implements nn.Module.
func (b *BasicBlock) CollectState(prefix string, s *nn.State) {
	b.Conv1.CollectState(nn.Join(prefix, "conv1"), s)
	b.BN1.CollectState(nn.Join(prefix, "bn1"), s)
	b.Conv2.CollectState(nn.Join(prefix, "conv2"), s)
	b.BN2.CollectState(nn.Join(prefix, "bn2"), s)
	if b.Downsample != nil {
		b.Downsample.CollectState(nn.Join(prefix, "downsample"), s)
	}
}

// SetTraining implements nn.Module.
func (b *BasicBlock) SetTraining(on bool) {
	b.BN1.SetTraining(on)
	b.BN2.SetTraining(on)
	if b.Downsample != nil {
		b.Downsample.SetTraining(on)
	}
}

// Bottleneck is 1x1 reduce, 3x3 (carrying the stride), 1x1 expand by 4,
// with a residual connection (ResNet-50).
type Bottleneck struct {
	Conv1, Conv2, Conv3 *nn.Conv2d
	BN1, BN2, BN3       *nn.BatchNorm
	Downsample          *Downsample // nil when the shortcut is the identity
}

func newBottleneck(in, planes, stride int, rng *rand.Rand) *Bottleneck {
	out := planes * 4
	b := &Bottleneck{
		Conv1: nn.NewConv2d(in, planes, 1, autograd.ConvParams{}, false, rng),
		BN1:   nn.NewBatchNorm(planes),
		Conv2: nn.NewConv2d(planes, planes, 3, autograd.ConvParams{StrideH: stride, StrideW: stride, PadH: 1, PadW: 1}, false, rng),
		BN2:   nn.NewBatchNorm(planes),
		Conv3: nn.NewConv2d(planes, out, 1, autograd.ConvParams{}, false, rng),
		BN3:   nn.NewBatchNorm(out),
	}
	if stride != 1 || in != out {
		b.Downsample = newDownsample(in, out, stride, rng)
	}
	return b
}

// Forward computes the bottleneck with its shortcut.
func (b *Bottleneck) Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	r1 := convBNReLU(tp, b.Conv1, b.BN1, x)
	r2 := convBNReLU(tp, b.Conv2, b.BN2, r1)
	release(tp, r2, r1)
	n3 := convBN(tp, b.Conv3, b.BN3, r2)
	release(tp, n3, r2)
	return residual(tp, b.Downsample, n3, x)
}

// CollectState implements nn.Module.
func (b *Bottleneck) CollectState(prefix string, s *nn.State) {
	b.Conv1.CollectState(nn.Join(prefix, "conv1"), s)
	b.BN1.CollectState(nn.Join(prefix, "bn1"), s)
	b.Conv2.CollectState(nn.Join(prefix, "conv2"), s)
	b.BN2.CollectState(nn.Join(prefix, "bn2"), s)
	b.Conv3.CollectState(nn.Join(prefix, "conv3"), s)
	b.BN3.CollectState(nn.Join(prefix, "bn3"), s)
	if b.Downsample != nil {
		b.Downsample.CollectState(nn.Join(prefix, "downsample"), s)
	}
}

// SetTraining implements nn.Module.
func (b *Bottleneck) SetTraining(on bool) {
	b.BN1.SetTraining(on)
	b.BN2.SetTraining(on)
	b.BN3.SetTraining(on)
	if b.Downsample != nil {
		b.Downsample.SetTraining(on)
	}
}
