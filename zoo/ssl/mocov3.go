package ssl

import (
	"fmt"
	"math/rand/v2"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/zoo"
)

// MoCoV3Config configures MoCo v3 (Chen, Xie and He 2021, "An Empirical
// Study of Training Self-Supervised Vision Transformers").
type MoCoV3Config struct {
	// ProjLayers is the projector depth (2 for ResNet, 3 for ViT);
	// HiddenDim the MLPs' hidden width (4096) and OutDim their output (256).
	ProjLayers, HiddenDim, OutDim int
	// Temperature of the contrastive loss (1.0 for ResNet, 0.2 for ViT).
	Temperature float32
	// BaseMomentum is the momentum encoder's EMA momentum at step 0 (0.99);
	// it rises to 1 on a cosine over MomentumSteps (0 means
	// Optim.TotalSteps).
	BaseMomentum  float64
	MomentumSteps int
	// FreezePatchEmbed keeps a ViT's patch projection at its random
	// initialisation (the paper's stop-gradient on the patch embedding, a
	// stability fix). Ignored for other backbones.
	FreezePatchEmbed bool
	Optim            OptimConfig
}

// DefaultMoCoV3Config is the paper's recipe for the backbone's family. For
// a ResNet: LARS with learning rate 0.6*batch/256, weight decay 1e-6,
// momentum 0.9, 10 warmup epochs, a 2-layer projector, temperature 1.0. For
// a ViT: AdamW with learning rate 1.5e-4*batch/256, weight decay 0.1, 40
// warmup epochs, a 3-layer projector, temperature 0.2 and a frozen patch
// embedding. Both: MLPs with hidden width 4096 and output 256, momentum
// 0.99 rising to 1 on a cosine, cosine learning-rate decay to 0.
func DefaultMoCoV3Config(backbone Encoder, batch, stepsPerEpoch, epochs int) MoCoV3Config {
	c := MoCoV3Config{HiddenDim: 4096, OutDim: 256, BaseMomentum: 0.99}
	total := epochs * stepsPerEpoch
	if _, vit := backbone.(*zoo.ViT); vit {
		c.ProjLayers, c.Temperature, c.FreezePatchEmbed = 3, 0.2, true
		c.Optim = OptimConfig{Name: "adamw", LR: scaleLR(1.5e-4, batch), WeightDecay: 0.1,
			WarmupSteps: warmupOf(40, epochs, stepsPerEpoch), TotalSteps: total}
		return c
	}
	c.ProjLayers, c.Temperature = 2, 1.0
	c.Optim = OptimConfig{Name: "lars", LR: scaleLR(0.6, batch), Momentum: 0.9, WeightDecay: 1e-6,
		WarmupSteps: warmupOf(10, epochs, stepsPerEpoch), TotalSteps: total}
	return c
}

// MoCoV3 is MoCo without a queue: the online network's predictions of each
// view are contrasted with the momentum encoder's projections of the other
// view, with the rest of the batch as negatives.
type MoCoV3 struct {
	Config                     MoCoV3Config
	Encoder, TargetEncoder     Encoder
	Projector, TargetProjector Head
	Predictor                  Head
	parts
	opt nn.Optimizer
	ema *nn.EMA
}

// NewMoCoV3 wraps backbone with MoCo v3's projector and predictor (Linear
// layers without bias, BatchNorm, the projector ending in a BatchNorm
// without affine parameters), a momentum copy of backbone and projector,
// and the optimizer.
func NewMoCoV3(cfg MoCoV3Config, backbone Encoder, rng *rand.Rand) (*MoCoV3, error) {
	switch {
	case !(cfg.Temperature > 0):
		return nil, fmt.Errorf("moco v3: temperature %g must be positive", cfg.Temperature)
	case !(cfg.BaseMomentum >= 0 && cfg.BaseMomentum <= 1):
		return nil, fmt.Errorf("moco v3: base momentum %g outside [0, 1]", cfg.BaseMomentum)
	}
	if cfg.MomentumSteps == 0 {
		cfg.MomentumSteps = cfg.Optim.TotalSteps
	}
	m := &MoCoV3{Config: cfg, Encoder: backbone}
	var err error
	newProj := func() (Head, error) {
		return newBiasFreeMLP(cfg.ProjLayers, backbone.FeatureDim(), cfg.HiddenDim, cfg.OutDim, true, rng)
	}
	if m.Projector, err = newProj(); err != nil {
		return nil, fmt.Errorf("moco v3: projector: %w", err)
	}
	if m.Predictor, err = newBiasFreeMLP(2, cfg.OutDim, cfg.HiddenDim, cfg.OutDim, false, rng); err != nil {
		return nil, fmt.Errorf("moco v3: predictor: %w", err)
	}
	if m.TargetEncoder, err = cloneEncoder(backbone, rng); err != nil {
		return nil, fmt.Errorf("moco v3: %w", err)
	}
	if m.TargetProjector, err = newProj(); err != nil {
		return nil, fmt.Errorf("moco v3: projector: %w", err)
	}
	if err := nn.CopyState(m.TargetProjector, m.Projector); err != nil {
		return nil, fmt.Errorf("moco v3: %w", err)
	}
	if vit, ok := backbone.(*zoo.ViT); ok && cfg.FreezePatchEmbed {
		vit.PatchEmbed.Weight.SetRequiresGrad(false)
		if vit.PatchEmbed.Bias != nil {
			vit.PatchEmbed.Bias.SetRequiresGrad(false)
		}
	}
	online := group{{"backbone", backbone, true}, {"projector", m.Projector, true}}
	target := group{{"target_backbone", m.TargetEncoder, false}, {"target_projector", m.TargetProjector, false}}
	m.list = append(append(append(group{}, online...), part{"predictor", m.Predictor, true}), target...)
	if m.ema, err = newEMA(online, target, cfg.BaseMomentum, cfg.MomentumSteps); err != nil {
		return nil, fmt.Errorf("moco v3: %w", err)
	}
	var params []nn.Param
	for _, p := range m.trainable() {
		if p.Var.RequiresGrad() {
			params = append(params, p)
		}
	}
	if m.opt, err = cfg.Optim.build(params); err != nil {
		return nil, fmt.Errorf("moco v3: %w", err)
	}
	m.SetTraining(true)
	return m, nil
}

func (m *MoCoV3) Name() string            { return "mocov3" }
func (m *MoCoV3) Backbone() Encoder       { return m.Encoder }
func (m *MoCoV3) Optimizer() nn.Optimizer { return m.opt }
func (m *MoCoV3) Configuration() any      { return m.Config }
func (m *MoCoV3) Schedule() OptimConfig   { return m.Config.Optim }

// TargetMomentum is the momentum applied at the start of iteration step.
func (m *MoCoV3) TargetMomentum(step int64) float64 { return m.ema.Momentum(int(step)) }

// Step runs one MoCo v3 iteration on two views. As in the reference, the
// momentum encoder moves first (with this step's momentum), then computes
// the keys. On several ranks the keys are gathered, so that the queries
// are contrasted with the global batch.
func (m *MoCoV3) Step(tp *autograd.Tape, views []*tensor.Tensor) (float32, error) {
	if err := checkViews("moco v3", views, 2, true); err != nil {
		return 0, err
	}
	step := m.steps
	return runStep(tp, "moco v3", &m.parts, m.opt, m.Config.Optim, func() (*autograd.Var, error) {
		m.ema.Update(int(step))
		var q, k [2]*autograd.Var
		for i, v := range views {
			x := autograd.Const(v)
			q[i] = m.Predictor.Forward(tp, m.Projector.Forward(tp, m.Encoder.Features(tp, x)))
			tp.NoGrad(func() { k[i] = m.TargetProjector.Forward(tp, m.TargetEncoder.Features(tp, x)) })
		}
		return mocoV3Loss(tp, q[0], q[1], k[0], k[1], m.Config.Temperature, &m.world), nil
	}, m.opt.Step)
}
