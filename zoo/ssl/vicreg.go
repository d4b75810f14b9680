package ssl

import (
	"fmt"
	"math/rand/v2"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/tensor"
)

// VICRegConfig configures VICReg (Bardes, Ponce and LeCun 2022).
type VICRegConfig struct {
	// ProjHidden and ProjDim size the expander, built as Barlow Twins'
	// projector (the paper's 8192-8192-8192); 0 means four times the
	// backbone's feature width.
	ProjHidden, ProjDim int
	Loss                VICRegLossConfig
	Optim               OptimConfig
}

// DefaultVICRegConfig is the paper's recipe: LARS with learning rate
// 0.2*batch/256, momentum 0.9, weight decay 1e-6 (biases and norms
// excluded), 10 warmup epochs then cosine decay to a thousandth of the
// peak; loss weights 25/25/1, gamma 1, epsilon 1e-4.
func DefaultVICRegConfig(batch, stepsPerEpoch, epochs int) VICRegConfig {
	lr := scaleLR(0.2, batch)
	return VICRegConfig{
		Loss: DefaultVICRegLoss,
		Optim: OptimConfig{Name: "lars", LR: lr, FinalLR: lr / 1000, Momentum: 0.9, WeightDecay: 1e-6,
			WarmupSteps: warmupOf(10, epochs, stepsPerEpoch), TotalSteps: epochs * stepsPerEpoch},
	}
}

// VICReg trains an encoder to give two views the same embedding while
// keeping every dimension's variance up and the dimensions decorrelated.
// Its variance and covariance terms need the global batch, so a
// data-parallel run all-gathers the embeddings first (see VICRegLoss).
type VICReg struct {
	Config VICRegConfig
	twin
}

// NewVICReg wraps backbone with VICReg's expander and optimizer.
func NewVICReg(cfg VICRegConfig, backbone Encoder, rng *rand.Rand) (*VICReg, error) {
	cfg.ProjHidden = projectorWidth(cfg.ProjHidden, backbone.FeatureDim())
	cfg.ProjDim = projectorWidth(cfg.ProjDim, backbone.FeatureDim())
	if l := cfg.Loss; !(l.Epsilon > 0) || !(l.Invariance >= 0 && l.Variance >= 0 && l.Covariance >= 0) {
		return nil, fmt.Errorf("vicreg: loss weights %g/%g/%g must be non-negative and epsilon %g positive",
			l.Invariance, l.Variance, l.Covariance, l.Epsilon)
	}
	proj, err := newBiasFreeMLP(3, backbone.FeatureDim(), cfg.ProjHidden, cfg.ProjDim, false, rng)
	if err != nil {
		return nil, fmt.Errorf("vicreg: expander: %w", err)
	}
	m := &VICReg{Config: cfg}
	if err := m.init("vicreg", backbone, proj, nil, cfg.Optim); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *VICReg) Name() string          { return "vicreg" }
func (m *VICReg) Configuration() any    { return m.Config }
func (m *VICReg) Schedule() OptimConfig { return m.Config.Optim }

// Step runs one VICReg iteration on two views. The variance and covariance
// terms span the global batch: on several ranks both views' projections
// are gathered (with their gradients, as the reference's FullGatherLayer)
// and every rank computes the whole loss.
func (m *VICReg) Step(tp *autograd.Tape, views []*tensor.Tensor) (float32, error) {
	return m.step(tp, "vicreg", m.Config.Optim, views, func(z [2]*autograd.Var) *autograd.Var {
		return VICRegLoss(tp, gatherRows(tp, z[0], &m.world), gatherRows(tp, z[1], &m.world), m.Config.Loss)
	})
}
