package ssl

import (
	"fmt"
	"math/rand/v2"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
)

// SimCLRConfig configures SimCLR (Chen et al. 2020).
type SimCLRConfig struct {
	// HiddenDim is the projection head's hidden width (0 means the
	// backbone's feature width, as in the paper); OutDim its output (128).
	HiddenDim, OutDim int
	// Temperature of NT-Xent.
	Temperature float32
	Optim       OptimConfig
}

// DefaultSimCLRConfig is the paper's recipe for a run of epochs epochs of
// stepsPerEpoch steps at the given batch size: LARS with learning rate
// 0.3*batch/256, momentum 0.9, weight decay 1e-6 (biases and norms
// excluded), 10 warmup epochs then cosine decay to 0; a 2-layer projection
// head with BatchNorm to 128 dimensions; temperature 0.5, the paper's choice
// for CIFAR-10 and small batches (0.1 is its ImageNet value at batch 4096).
func DefaultSimCLRConfig(batch, stepsPerEpoch, epochs int) SimCLRConfig {
	return SimCLRConfig{
		OutDim:      128,
		Temperature: 0.5,
		Optim: OptimConfig{Name: "lars", LR: scaleLR(0.3, batch), Momentum: 0.9, WeightDecay: 1e-6,
			WarmupSteps: warmupOf(10, epochs, stepsPerEpoch), TotalSteps: epochs * stepsPerEpoch},
	}
}

// SimCLR trains an encoder by pulling the projections of two views of an
// image together and pushing those of other images in the batch apart.
type SimCLR struct {
	Config    SimCLRConfig
	Encoder   Encoder
	Projector Head
	parts
	opt nn.Optimizer
}

// NewSimCLR wraps backbone with SimCLR's projection head and optimizer.
func NewSimCLR(cfg SimCLRConfig, backbone Encoder, rng *rand.Rand) (*SimCLR, error) {
	if cfg.HiddenDim == 0 {
		cfg.HiddenDim = backbone.FeatureDim()
	}
	if !(cfg.Temperature > 0) {
		return nil, fmt.Errorf("simclr: temperature %g must be positive", cfg.Temperature)
	}
	proj, err := newMLPHead([]int{backbone.FeatureDim(), cfg.HiddenDim, cfg.OutDim}, true, rng)
	if err != nil {
		return nil, fmt.Errorf("simclr: projector: %w", err)
	}
	m := &SimCLR{Config: cfg, Encoder: backbone, Projector: proj}
	m.list = []part{{"backbone", backbone, true}, {"projector", proj, true}}
	if m.opt, err = cfg.Optim.build(m.trainable()); err != nil {
		return nil, fmt.Errorf("simclr: %w", err)
	}
	m.SetTraining(true)
	return m, nil
}

func (m *SimCLR) Name() string            { return "simclr" }
func (m *SimCLR) Backbone() Encoder       { return m.Encoder }
func (m *SimCLR) Optimizer() nn.Optimizer { return m.opt }
func (m *SimCLR) Configuration() any      { return m.Config }
func (m *SimCLR) Schedule() OptimConfig   { return m.Config.Optim }

// Step runs one SimCLR iteration on two views. Both views go through the
// encoder as one batch, as in the reference implementation, so BatchNorm
// sees all 2N images. On several ranks the normalised projections are
// gathered: every rank's images are negatives for every other's.
func (m *SimCLR) Step(tp *autograd.Tape, views []*tensor.Tensor) (float32, error) {
	if err := checkViews("simclr", views, 2, true); err != nil {
		return 0, err
	}
	if !tensor.SameShape(views[0].Shape, views[1].Shape) {
		return 0, fmt.Errorf("simclr: view shapes %v and %v differ", views[0].Shape, views[1].Shape)
	}
	n := views[0].Shape[0]
	return runStep(tp, "simclr", &m.parts, m.opt, m.Config.Optim, func() (*autograd.Var, error) {
		z := m.Projector.Forward(tp, m.Encoder.Features(tp, concatViews(tp, views)))
		return ntXent(tp, tp.Slice(z, 0, 0, n), tp.Slice(z, 0, n, 2*n), m.Config.Temperature, &m.world), nil
	}, m.opt.Step)
}
