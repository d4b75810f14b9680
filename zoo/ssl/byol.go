package ssl

import (
	"fmt"
	"math/rand/v2"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
)

// BYOLConfig configures BYOL (Grill et al. 2020).
type BYOLConfig struct {
	// ProjHidden and ProjDim size the projector (4096 -> 256); PredHidden
	// the predictor's hidden layer (4096), whose output is ProjDim.
	ProjHidden, ProjDim, PredHidden int
	// BaseMomentum is the target's EMA momentum at step 0 (0.996); it rises
	// to 1 on a cosine over MomentumSteps (0 means Optim.TotalSteps).
	BaseMomentum  float64
	MomentumSteps int
	Optim         OptimConfig
}

// DefaultBYOLConfig is the paper's recipe: LARS with learning rate
// 0.2*batch/256, momentum 0.9, weight decay 1.5e-6 (biases and norms
// excluded), 10 warmup epochs then cosine decay to 0; projector and
// predictor MLPs 4096 -> 256 with BatchNorm; target momentum 0.996 rising to
// 1 on a cosine over the run.
func DefaultBYOLConfig(batch, stepsPerEpoch, epochs int) BYOLConfig {
	return BYOLConfig{
		ProjHidden: 4096, ProjDim: 256, PredHidden: 4096, BaseMomentum: 0.996,
		Optim: OptimConfig{Name: "lars", LR: scaleLR(0.2, batch), Momentum: 0.9, WeightDecay: 1.5e-6,
			WarmupSteps: warmupOf(10, epochs, stepsPerEpoch), TotalSteps: epochs * stepsPerEpoch},
	}
}

// BYOL trains an online network to predict a slowly moving target
// network's projection of another view of the same image.
type BYOL struct {
	Config                     BYOLConfig
	Encoder, TargetEncoder     Encoder
	Projector, TargetProjector Head
	Predictor                  Head
	parts
	opt nn.Optimizer
	ema *nn.EMA
}

// NewBYOL wraps backbone with BYOL's projector and predictor, a target copy
// of backbone and projector, and the optimizer.
func NewBYOL(cfg BYOLConfig, backbone Encoder, rng *rand.Rand) (*BYOL, error) {
	if !(cfg.BaseMomentum >= 0 && cfg.BaseMomentum <= 1) {
		return nil, fmt.Errorf("byol: base momentum %g outside [0, 1]", cfg.BaseMomentum)
	}
	if cfg.MomentumSteps == 0 {
		cfg.MomentumSteps = cfg.Optim.TotalSteps
	}
	dims := []int{backbone.FeatureDim(), cfg.ProjHidden, cfg.ProjDim}
	m := &BYOL{Config: cfg, Encoder: backbone}
	var err error
	if m.Projector, err = newMLPHead(dims, true, rng); err != nil {
		return nil, fmt.Errorf("byol: projector: %w", err)
	}
	if m.Predictor, err = newMLPHead([]int{cfg.ProjDim, cfg.PredHidden, cfg.ProjDim}, true, rng); err != nil {
		return nil, fmt.Errorf("byol: predictor: %w", err)
	}
	if m.TargetEncoder, err = cloneEncoder(backbone, rng); err != nil {
		return nil, fmt.Errorf("byol: %w", err)
	}
	if m.TargetProjector, err = newMLPHead(dims, true, rng); err != nil {
		return nil, fmt.Errorf("byol: projector: %w", err)
	}
	if err := nn.CopyState(m.TargetProjector, m.Projector); err != nil {
		return nil, fmt.Errorf("byol: %w", err)
	}
	online := group{{"backbone", backbone, true}, {"projector", m.Projector, true}}
	target := group{{"target_backbone", m.TargetEncoder, false}, {"target_projector", m.TargetProjector, false}}
	m.list = append(append(append(group{}, online...), part{"predictor", m.Predictor, true}), target...)
	if m.ema, err = newEMA(online, target, cfg.BaseMomentum, cfg.MomentumSteps); err != nil {
		return nil, fmt.Errorf("byol: %w", err)
	}
	if m.opt, err = cfg.Optim.build(m.trainable()); err != nil {
		return nil, fmt.Errorf("byol: %w", err)
	}
	m.SetTraining(true)
	return m, nil
}

func (m *BYOL) Name() string            { return "byol" }
func (m *BYOL) Backbone() Encoder       { return m.Encoder }
func (m *BYOL) Optimizer() nn.Optimizer { return m.opt }
func (m *BYOL) Configuration() any      { return m.Config }
func (m *BYOL) Schedule() OptimConfig   { return m.Config.Optim }

// TargetMomentum is the EMA momentum applied after iteration step.
func (m *BYOL) TargetMomentum(step int64) float64 { return m.ema.Momentum(int(step)) }

// Step runs one BYOL iteration on two views; each view goes through the
// networks on its own, as in the reference. After the optimizer step the
// target moves towards the updated online network with this step's
// momentum. The loss is a mean of per-image terms: on several ranks
// nothing is gathered.
func (m *BYOL) Step(tp *autograd.Tape, views []*tensor.Tensor) (float32, error) {
	if err := checkViews("byol", views, 2, true); err != nil {
		return 0, err
	}
	step := m.steps
	return runStep(tp, "byol", &m.parts, m.opt, m.Config.Optim, func() (*autograd.Var, error) {
		var p, z [2]*autograd.Var
		for i, v := range views {
			x := autograd.Const(v)
			p[i] = m.Predictor.Forward(tp, m.Projector.Forward(tp, m.Encoder.Features(tp, x)))
			tp.NoGrad(func() { z[i] = m.TargetProjector.Forward(tp, m.TargetEncoder.Features(tp, x)) })
		}
		return BYOLLoss(tp, p[0], p[1], z[0], z[1]), nil
	}, func() {
		m.opt.Step()
		m.ema.Update(int(step))
	})
}
