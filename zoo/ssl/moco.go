package ssl

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
)

// MoCoV2Config configures MoCo v2 (Chen et al. 2020, "Improved Baselines
// with Momentum Contrastive Learning").
type MoCoV2Config struct {
	// HiddenDim is the MLP head's hidden width (0 means the backbone's
	// feature width); OutDim the key dimension (128).
	HiddenDim, OutDim int
	// QueueSize is the number of negative keys K (65536).
	QueueSize int
	// Temperature of InfoNCE (0.2).
	Temperature float32
	// Momentum of the key encoder's moving average (0.999, constant).
	Momentum float64
	Optim    OptimConfig
}

// DefaultMoCoV2Config is the paper's recipe: SGD with learning rate
// 0.03*batch/256, momentum 0.9, weight decay 1e-4 and a cosine schedule to
// 0 without warmup; a 2-layer MLP head (no BatchNorm) to 128 dimensions; a
// queue of 65536 keys; temperature 0.2; key-encoder momentum 0.999.
func DefaultMoCoV2Config(batch, stepsPerEpoch, epochs int) MoCoV2Config {
	return MoCoV2Config{
		OutDim: 128, QueueSize: 65536, Temperature: 0.2, Momentum: 0.999,
		Optim: OptimConfig{Name: "sgd", LR: scaleLR(0.03, batch), Momentum: 0.9, WeightDecay: 1e-4,
			TotalSteps: epochs * stepsPerEpoch},
	}
}

// MoCoV2 trains a query encoder against keys from a momentum encoder: the
// key of the other view is the positive, the queue of earlier keys the
// negatives.
//
// Shuffling BatchNorm is a multi-GPU device of the reference code (it
// keeps one device's BatchNorm from seeing the query and key sub-batches
// together); on one process every image is normalised with the whole batch,
// as in the single-GPU reproductions.
type MoCoV2 struct {
	Config                     MoCoV2Config
	Encoder, TargetEncoder     Encoder
	Projector, TargetProjector Head
	// Queue holds the negative keys as columns, [OutDim, QueueSize] (MoCo's
	// buffer layout); QueuePtr is the next column to overwrite.
	Queue    *tensor.Tensor
	QueuePtr int64
	parts
	opt nn.Optimizer
	ema *nn.EMA
}

// NewMoCoV2 wraps backbone with MoCo v2's head, a momentum copy of both,
// a queue of random unit keys and the optimizer.
func NewMoCoV2(cfg MoCoV2Config, backbone Encoder, rng *rand.Rand) (*MoCoV2, error) {
	if cfg.HiddenDim == 0 {
		cfg.HiddenDim = backbone.FeatureDim()
	}
	switch {
	case cfg.OutDim < 1 || cfg.QueueSize < 1:
		return nil, fmt.Errorf("moco v2: key dimension %d and queue size %d must be positive", cfg.OutDim, cfg.QueueSize)
	case !(cfg.Temperature > 0):
		return nil, fmt.Errorf("moco v2: temperature %g must be positive", cfg.Temperature)
	case !(cfg.Momentum >= 0 && cfg.Momentum <= 1):
		return nil, fmt.Errorf("moco v2: momentum %g outside [0, 1]", cfg.Momentum)
	}
	dims := []int{backbone.FeatureDim(), cfg.HiddenDim, cfg.OutDim}
	proj, err := newMLPHead(dims, false, rng)
	if err != nil {
		return nil, fmt.Errorf("moco v2: projector: %w", err)
	}
	m := &MoCoV2{Config: cfg, Encoder: backbone, Projector: proj}
	if m.TargetEncoder, err = cloneEncoder(backbone, rng); err != nil {
		return nil, fmt.Errorf("moco v2: %w", err)
	}
	if m.TargetProjector, err = newMLPHead(dims, false, rng); err != nil {
		return nil, fmt.Errorf("moco v2: projector: %w", err)
	}
	if err := nn.CopyState(m.TargetProjector, proj); err != nil {
		return nil, fmt.Errorf("moco v2: %w", err)
	}
	online := group{{"backbone", backbone, true}, {"projector", proj, true}}
	target := group{{"target_backbone", m.TargetEncoder, false}, {"target_projector", m.TargetProjector, false}}
	m.list = append(append(group{}, online...), target...)
	if m.ema, err = newEMA(online, target, cfg.Momentum, 0); err != nil {
		return nil, fmt.Errorf("moco v2: %w", err)
	}
	m.Queue = tensor.New(cfg.OutDim, cfg.QueueSize)
	for i := range m.Queue.Data {
		m.Queue.Data[i] = float32(rng.NormFloat64())
	}
	normalizeColumns(m.Queue)
	m.buffers = func(prefix string, s *nn.State) {
		s.Buffers = append(s.Buffers, nn.Buffer{Name: nn.Join(prefix, "queue"), T: m.Queue},
			nn.Buffer{Name: nn.Join(prefix, "queue_ptr"), Count: &m.QueuePtr})
	}
	if m.opt, err = cfg.Optim.build(m.trainable()); err != nil {
		return nil, fmt.Errorf("moco v2: %w", err)
	}
	m.SetTraining(true)
	return m, nil
}

func (m *MoCoV2) Name() string            { return "mocov2" }
func (m *MoCoV2) Backbone() Encoder       { return m.Encoder }
func (m *MoCoV2) Optimizer() nn.Optimizer { return m.opt }
func (m *MoCoV2) Configuration() any      { return m.Config }
func (m *MoCoV2) Schedule() OptimConfig   { return m.Config.Optim }

// Step runs one MoCo v2 iteration: views[0] are the queries, views[1] the
// keys. As in the reference, the key encoder moves first, then the loss is
// taken against the queue as it was, and the new keys replace the oldest
// ones after the update. On several ranks the loss is per image; the keys
// of every rank are gathered into the queue.
func (m *MoCoV2) Step(tp *autograd.Tape, views []*tensor.Tensor) (float32, error) {
	if err := checkViews("moco v2", views, 2, true); err != nil {
		return 0, err
	}
	var keys *autograd.Var
	return runStep(tp, "moco v2", &m.parts, m.opt, m.Config.Optim, func() (*autograd.Var, error) {
		m.ema.UpdateWith(m.Config.Momentum)
		q := m.Projector.Forward(tp, m.Encoder.Features(tp, autograd.Const(views[0])))
		tp.NoGrad(func() {
			k := m.TargetProjector.Forward(tp, m.TargetEncoder.Features(tp, autograd.Const(views[1])))
			keys = tp.L2Normalize(k, 1, normEps)
		})
		return InfoNCE(tp, q, keys, m.Queue, m.Config.Temperature), nil
	}, func() {
		m.opt.Step()
		// Every rank's keys, in the global batch's order, so that K
		// ranks fill the queue as one rank would.
		m.enqueue(m.gatherValues("MoCoV2", keys.Value))
	})
}

// enqueue writes keys [N, D] over the oldest queue columns, wrapping
// around the end.
func (m *MoCoV2) enqueue(keys *tensor.Tensor) {
	n, d, k := keys.Shape[0], keys.Shape[1], m.Config.QueueSize
	ptr := int(m.QueuePtr % int64(k))
	for i := range n {
		col := (ptr + i) % k
		for j := range d {
			m.Queue.Data[j*k+col] = keys.Data[i*d+j]
		}
	}
	m.QueuePtr = int64((ptr + n) % k)
}

// normalizeColumns scales every column of a [D, K] matrix to unit length.
func normalizeColumns(t *tensor.Tensor) {
	d, k := t.Shape[0], t.Shape[1]
	for c := range k {
		var s float64
		for r := range d {
			v := float64(t.Data[r*k+c])
			s += v * v
		}
		inv := float32(1 / math.Max(math.Sqrt(s), normEps))
		for r := range d {
			t.Data[r*k+c] *= inv
		}
	}
}
