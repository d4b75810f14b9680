package ssl

import (
	"fmt"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
)

// twin is what Barlow Twins, VICReg and SimSiam share: one encoder and one
// projector for both views, no target network, no queue. Each view goes
// through the network on its own, as in their reference code, so
// BatchNorm normalises each view's batch by itself.
type twin struct {
	Encoder   Encoder
	Projector Head
	parts
	opt nn.Optimizer
}

// init records backbone, projector and any extra trainable parts (under
// their state names) and builds the optimizer over all of them.
func (m *twin) init(method string, backbone Encoder, projector Head, extra []part, oc OptimConfig) error {
	m.Encoder, m.Projector = backbone, projector
	m.list = append(group{{"backbone", backbone, true}, {"projector", projector, true}}, extra...)
	var err error
	if m.opt, err = oc.build(m.trainable()); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	m.SetTraining(true)
	return nil
}

func (m *twin) Backbone() Encoder       { return m.Encoder }
func (m *twin) Optimizer() nn.Optimizer { return m.opt }

// step runs one iteration on two views: each is encoded and projected,
// and loss maps the two projections to the loss.
func (m *twin) step(tp *autograd.Tape, method string, oc OptimConfig, views []*tensor.Tensor,
	loss func(z [2]*autograd.Var) *autograd.Var) (float32, error) {
	if err := checkViews(method, views, 2, true); err != nil {
		return 0, err
	}
	return runStep(tp, method, &m.parts, m.opt, oc, func() (*autograd.Var, error) {
		var z [2]*autograd.Var
		for i, v := range views {
			z[i] = m.Projector.Forward(tp, m.Encoder.Features(tp, autograd.Const(v)))
		}
		return loss(z), nil
	}, m.opt.Step)
}

// projectorWidth is a Barlow Twins or VICReg projector width left at 0:
// four times the backbone's feature width, the papers' 8192 for
// ResNet-50's 2048, so that small backbones get proportionate (and
// trainable on a CPU) projectors.
func projectorWidth(w, featureDim int) int {
	if w == 0 {
		return 4 * featureDim
	}
	return w
}
