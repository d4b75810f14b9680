package ssl

import (
	"fmt"
	"math/rand/v2"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
)

// SimSiamConfig configures SimSiam (Chen and He 2021).
type SimSiamConfig struct {
	// ProjLayers is the projector depth (3; 2 in the paper's CIFAR
	// setting). Its hidden layers are ProjHidden wide (0 means the
	// backbone's feature width, as in the paper) and its output ProjDim
	// (2048), each Linear without bias and followed by BatchNorm (the last
	// without affine parameters).
	ProjLayers, ProjHidden, ProjDim int
	// PredHidden is the predictor's bottleneck (512): ProjDim -> PredHidden
	// -> ProjDim with BatchNorm and ReLU in between.
	PredHidden int
	Optim      OptimConfig
}

// DefaultSimSiamConfig is the paper's recipe: SGD with learning rate
// 0.05*batch/256, momentum 0.9, weight decay 1e-4 on every parameter, cosine
// decay to 0 without warmup; a 3-layer projector to 2048 and a predictor
// with a 512 bottleneck. The paper keeps the predictor's rate fixed; here
// it follows the schedule too.
func DefaultSimSiamConfig(batch, stepsPerEpoch, epochs int) SimSiamConfig {
	return SimSiamConfig{
		ProjLayers: 3, ProjDim: 2048, PredHidden: 512,
		Optim: OptimConfig{Name: "sgd", LR: scaleLR(0.05, batch), Momentum: 0.9, WeightDecay: 1e-4,
			TotalSteps: epochs * stepsPerEpoch},
	}
}

// SimSiam trains an encoder by predicting the projection of one view from
// the other's, with a stop-gradient on the predicted side and no momentum
// encoder or negatives. Its loss is per image, so a data-parallel run
// gathers nothing (see SimSiamLoss); BatchNorm stays per rank unless the
// run synchronises it.
type SimSiam struct {
	Config    SimSiamConfig
	Predictor Head
	twin
}

// NewSimSiam wraps backbone with SimSiam's projector, predictor and
// optimizer.
func NewSimSiam(cfg SimSiamConfig, backbone Encoder, rng *rand.Rand) (*SimSiam, error) {
	if cfg.ProjHidden == 0 {
		cfg.ProjHidden = backbone.FeatureDim()
	}
	proj, err := newBiasFreeMLP(cfg.ProjLayers, backbone.FeatureDim(), cfg.ProjHidden, cfg.ProjDim, true, rng)
	if err != nil {
		return nil, fmt.Errorf("simsiam: projector: %w", err)
	}
	pred, err := nn.NewMLP(nn.MLPConfig{Dims: []int{cfg.ProjDim, cfg.PredHidden, cfg.ProjDim}, BatchNorm: true, NoBiasBeforeBN: true}, rng)
	if err != nil {
		return nil, fmt.Errorf("simsiam: predictor: %w", err)
	}
	m := &SimSiam{Config: cfg, Predictor: pred}
	if err := m.init("simsiam", backbone, proj, []part{{"predictor", pred, true}}, cfg.Optim); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *SimSiam) Name() string          { return "simsiam" }
func (m *SimSiam) Configuration() any    { return m.Config }
func (m *SimSiam) Schedule() OptimConfig { return m.Config.Optim }

// Step runs one SimSiam iteration on two views. The loss is a mean of
// per-image terms: on several ranks nothing is gathered.
func (m *SimSiam) Step(tp *autograd.Tape, views []*tensor.Tensor) (float32, error) {
	return m.step(tp, "simsiam", m.Config.Optim, views, func(z [2]*autograd.Var) *autograd.Var {
		p0, p1 := m.Predictor.Forward(tp, z[0]), m.Predictor.Forward(tp, z[1])
		return SimSiamLoss(tp, p0, p1, z[0], z[1])
	})
}
