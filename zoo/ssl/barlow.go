package ssl

import (
	"fmt"
	"math/rand/v2"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/tensor"
)

// BarlowConfig configures Barlow Twins (Zbontar et al. 2021).
type BarlowConfig struct {
	// ProjHidden and ProjDim size the projector, Linear-BN-ReLU twice then
	// a Linear, none with bias (the paper's 8192-8192-8192); 0 means four
	// times the backbone's feature width.
	ProjHidden, ProjDim int
	// Lambda weighs the off-diagonal (redundancy) term (5e-3).
	Lambda float32
	// Scale multiplies the loss (1; solo-learn's CIFAR recipe: 0.1).
	Scale float32
	Optim OptimConfig
}

// DefaultBarlowConfig is the paper's recipe: LARS with learning rate
// 0.2*batch/256, momentum 0.9, weight decay 1.5e-6 (biases and norms
// excluded from adaptation and decay), 10 warmup epochs then cosine decay
// to a thousandth of the peak; lambda 5e-3. The paper gives biases and
// norms their own rate (0.0048 per 256); here every parameter follows one
// schedule.
func DefaultBarlowConfig(batch, stepsPerEpoch, epochs int) BarlowConfig {
	lr := scaleLR(0.2, batch)
	return BarlowConfig{
		Lambda: 5e-3, Scale: 1,
		Optim: OptimConfig{Name: "lars", LR: lr, FinalLR: lr / 1000, Momentum: 0.9, WeightDecay: 1.5e-6,
			WarmupSteps: warmupOf(10, epochs, stepsPerEpoch), TotalSteps: epochs * stepsPerEpoch},
	}
}

// Barlow trains an encoder so that the cross-correlation of the
// projections of two views is close to the identity: invariant to the
// augmentations, with decorrelated dimensions. Its loss needs the global
// batch's statistics, so a data-parallel run all-gathers the projections
// first (see BarlowTwinsLoss).
type Barlow struct {
	Config BarlowConfig
	twin
}

// NewBarlow wraps backbone with Barlow Twins' projector and optimizer.
func NewBarlow(cfg BarlowConfig, backbone Encoder, rng *rand.Rand) (*Barlow, error) {
	cfg.ProjHidden = projectorWidth(cfg.ProjHidden, backbone.FeatureDim())
	cfg.ProjDim = projectorWidth(cfg.ProjDim, backbone.FeatureDim())
	if !(cfg.Lambda >= 0) || !(cfg.Scale > 0) {
		return nil, fmt.Errorf("barlow: lambda %g must be non-negative and scale %g positive", cfg.Lambda, cfg.Scale)
	}
	proj, err := newBiasFreeMLP(3, backbone.FeatureDim(), cfg.ProjHidden, cfg.ProjDim, false, rng)
	if err != nil {
		return nil, fmt.Errorf("barlow: projector: %w", err)
	}
	m := &Barlow{Config: cfg}
	if err := m.init("barlow", backbone, proj, nil, cfg.Optim); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Barlow) Name() string          { return "barlow" }
func (m *Barlow) Configuration() any    { return m.Config }
func (m *Barlow) Schedule() OptimConfig { return m.Config.Optim }

// Step runs one Barlow Twins iteration on two views. The cross-correlation
// and its per-dimension normalisation span the global batch: on several
// ranks both views' projections are gathered (with their gradients) and
// every rank computes the whole loss.
func (m *Barlow) Step(tp *autograd.Tape, views []*tensor.Tensor) (float32, error) {
	return m.step(tp, "barlow", m.Config.Optim, views, func(z [2]*autograd.Var) *autograd.Var {
		z0, z1 := gatherRows(tp, z[0], &m.world), gatherRows(tp, z[1], &m.world)
		var loss *autograd.Var
		// The loss's own BatchNorm sees the gathered batch already.
		tp.Unsynchronised(func() { loss = BarlowTwinsLoss(tp, z0, z1, m.Config.Lambda) })
		return tp.MulScalar(loss, m.Config.Scale)
	})
}
