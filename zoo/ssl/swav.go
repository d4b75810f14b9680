package ssl

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
)

// SwAVConfig configures SwAV (Caron et al. 2020).
type SwAVConfig struct {
	// ProjHidden and ProjDim size the projection head (2048 -> 128).
	ProjHidden, ProjDim int
	// Prototypes is the number of prototype vectors K (3000).
	Prototypes int
	// Temperature of the swapped prediction's softmax (0.1).
	Temperature float32
	// Epsilon and SinkhornIters configure Sinkhorn-Knopp (0.05, 3).
	Epsilon       float32
	SinkhornIters int
	// GlobalCrops is the number of leading views whose codes are predicted
	// (2: the global crops; the rest are local crops).
	GlobalCrops int
	// FreezePrototypesSteps keeps the prototypes fixed for the first
	// iterations (one epoch in the recipes: 313 steps at batch 4096).
	FreezePrototypesSteps int
	// QueueLength (0: no queue) keeps that many embeddings of earlier
	// batches per global crop, used in Sinkhorn once full; filling starts
	// at QueueStartStep. The recipes for batch 256 use 3840 from epoch 15.
	// QueueLength must be a multiple of the batch size.
	QueueLength, QueueStartStep int
	Optim                       OptimConfig
}

// DefaultSwAVConfig is the paper's recipe: LARS with learning rate
// 4.8*batch/4096 decaying on a cosine to a thousandth of it, 10 warmup
// epochs, weight decay 1e-6, momentum 0.9, every parameter adapted (LARC);
// projection head 2048 -> 128 with BatchNorm; 3000 prototypes frozen for
// the first epoch (at most a tenth of the run: freezeOf); temperature 0.1; Sinkhorn with epsilon 0.05 and 3
// iterations; no queue (the script's default).
func DefaultSwAVConfig(batch, stepsPerEpoch, epochs int) SwAVConfig {
	lr := 4.8 * float64(batch) / 4096
	return SwAVConfig{
		ProjHidden: 2048, ProjDim: 128, Prototypes: 3000, Temperature: 0.1, Epsilon: 0.05, SinkhornIters: 3,
		GlobalCrops: 2, FreezePrototypesSteps: freezeOf(1, epochs, stepsPerEpoch),
		Optim: OptimConfig{Name: "lars", LR: lr, FinalLR: lr / 1000, Momentum: 0.9, WeightDecay: 1e-6, AdaptAll: true,
			WarmupSteps: warmupOf(10, epochs, stepsPerEpoch), TotalSteps: epochs * stepsPerEpoch},
	}
}

// SwAV learns by predicting the cluster assignment (code) of one view of an
// image from the embedding of another; codes come from an equal-partition
// optimal transport of the batch onto the prototypes (Sinkhorn-Knopp).
type SwAV struct {
	Config     SwAVConfig
	Encoder    Encoder
	Projector  Head
	Prototypes *nn.Linear // [K, ProjDim], rows kept unit-norm
	// Queue holds [GlobalCrops, QueueLength, ProjDim] embeddings, newest
	// first; QueueFilled counts the valid rows.
	Queue       *tensor.Tensor
	QueueFilled int64
	parts
	opt nn.Optimizer
}

// NewSwAV wraps backbone with SwAV's projection head, the prototypes and
// the optimizer.
func NewSwAV(cfg SwAVConfig, backbone Encoder, rng *rand.Rand) (*SwAV, error) {
	switch {
	case cfg.Prototypes < 1 || cfg.ProjDim < 1:
		return nil, fmt.Errorf("swav: %d prototypes of dimension %d", cfg.Prototypes, cfg.ProjDim)
	case !(cfg.Temperature > 0) || !(cfg.Epsilon > 0) || cfg.SinkhornIters < 0:
		return nil, fmt.Errorf("swav: temperature %g, epsilon %g, %d Sinkhorn iterations", cfg.Temperature, cfg.Epsilon, cfg.SinkhornIters)
	case cfg.GlobalCrops < 1:
		return nil, fmt.Errorf("swav: %d global crops", cfg.GlobalCrops)
	case cfg.QueueLength < 0 || cfg.QueueStartStep < 0 || cfg.FreezePrototypesSteps < 0:
		return nil, fmt.Errorf("swav: queue length %d, queue start %d, freeze %d must be non-negative", cfg.QueueLength, cfg.QueueStartStep, cfg.FreezePrototypesSteps)
	}
	m := &SwAV{Config: cfg, Encoder: backbone, Prototypes: nn.NewLinear(cfg.ProjDim, cfg.Prototypes, false, rng)}
	var err error
	if m.Projector, err = newMLPHead([]int{backbone.FeatureDim(), cfg.ProjHidden, cfg.ProjDim}, true, rng); err != nil {
		return nil, fmt.Errorf("swav: projector: %w", err)
	}
	normalizeRows(m.Prototypes.Weight.Value)
	m.list = group{{"backbone", backbone, true}, {"projector", m.Projector, true}, {"prototypes", m.Prototypes, true}}
	if cfg.QueueLength > 0 {
		m.Queue = tensor.New(cfg.GlobalCrops, cfg.QueueLength, cfg.ProjDim)
		m.buffers = func(prefix string, s *nn.State) {
			s.Buffers = append(s.Buffers, nn.Buffer{Name: nn.Join(prefix, "queue"), T: m.Queue},
				nn.Buffer{Name: nn.Join(prefix, "queue_filled"), Count: &m.QueueFilled})
		}
	}
	if m.opt, err = cfg.Optim.build(m.trainable()); err != nil {
		return nil, fmt.Errorf("swav: %w", err)
	}
	m.SetTraining(true)
	return m, nil
}

func (m *SwAV) Name() string            { return "swav" }
func (m *SwAV) Backbone() Encoder       { return m.Encoder }
func (m *SwAV) Optimizer() nn.Optimizer { return m.opt }
func (m *SwAV) Configuration() any      { return m.Config }
func (m *SwAV) Schedule() OptimConfig   { return m.Config.Optim }

// PrototypesFrozen reports whether the prototypes are held fixed at
// iteration step.
func (m *SwAV) PrototypesFrozen(step int64) bool { return step < int64(m.Config.FreezePrototypesSteps) }

// Step runs one SwAV iteration on the crops of a batch: the first
// GlobalCrops views are the global crops, the rest local crops (smaller
// images allowed). Consecutive views of the same size go through the
// encoder as one batch and the projection head sees all crops at once, as
// in the reference.
//
// Under data parallelism every rank's scores of the assignment crops are
// gathered (values only: codes carry no gradient), so that Sinkhorn's
// equal partition spans the global batch as SwAV's distributed_sinkhorn
// does, and the global crops' embeddings of every rank are gathered into
// the queue, which thus holds the same global rows on every rank.
func (m *SwAV) Step(tp *autograd.Tape, views []*tensor.Tensor) (float32, error) {
	g := m.Config.GlobalCrops
	if err := checkViews("swav", views, max(2, g), false); err != nil {
		return 0, err
	}
	rank, ranks := m.ranks()
	b, step := views[0].Shape[0], m.steps
	if m.Queue != nil && m.Config.QueueLength%(b*ranks) != 0 {
		return 0, fmt.Errorf("swav: queue length %d is not a multiple of the batch size %d", m.Config.QueueLength, b*ranks)
	}
	w := m.Prototypes.Weight
	useQueue := m.Queue != nil && step >= int64(m.Config.QueueStartStep)
	var z *autograd.Var
	return runStep(tp, "swav", &m.parts, m.opt, m.Config.Optim, func() (*autograd.Var, error) {
		normalizeRows(w.Value)
		w.SetRequiresGrad(!m.PrototypesFrozen(step))
		z = tp.L2Normalize(m.Projector.Forward(tp, multiCropFeatures(tp, m.Encoder, views)), 1, normEps)
		scores := m.Prototypes.Forward(tp, z)
		assign := make([]int, g)
		for i := range assign {
			assign[i] = i
		}
		var qs []*tensor.Tensor
		if useQueue && m.QueueFilled >= int64(m.Config.QueueLength) {
			l, d := m.Config.QueueLength, m.Config.ProjDim
			for i := range g {
				blk := &tensor.Tensor{Shape: []int{l, d}, Data: m.Queue.Data[i*l*d : (i+1)*l*d]}
				qs = append(qs, queueScores(blk, w.Value))
			}
		}
		lc := SwAVLossConfig{Batch: b, AssignCrops: assign,
			Temperature: m.Config.Temperature, Epsilon: m.Config.Epsilon, Iterations: m.Config.SinkhornIters}
		if m.parallel() {
			lc.Gather, lc.Rank = func(t *tensor.Tensor) *tensor.Tensor { return m.gatherValues("swav", t) }, rank
		}
		loss, _, err := SwAVLoss(tp, scores, qs, lc)
		return loss, err
	}, func() {
		m.opt.Step()
		if useQueue {
			m.enqueue(m.globalCrops(z.Value, b))
		}
		// Keep the stored prototypes on the unit sphere between steps too,
		// so checkpoints and exports hold what the next step would use.
		normalizeRows(w.Value)
	})
}

// globalCrops is the embeddings of the global crops, [GlobalCrops, B, D]
// crop by crop, of the global batch: z's own first crops on one process,
// every rank's in rank order under data parallelism. b is this rank's
// batch.
func (m *SwAV) globalCrops(z *tensor.Tensor, b int) *tensor.Tensor {
	g, d := m.Config.GlobalCrops, m.Config.ProjDim
	own := &tensor.Tensor{Shape: []int{g * b, d}, Data: z.Data[:g*b*d]}
	if !m.parallel() {
		return &tensor.Tensor{Shape: []int{g, b, d}, Data: own.Data}
	}
	_, ranks := m.ranks()
	all := m.gatherValues("swav queue", own) // [ranks][g][b][d]
	out := tensor.New(g, ranks*b, d)
	for r := range ranks {
		for i := range g {
			src := all.Data[(r*g+i)*b*d : (r*g+i+1)*b*d]
			copy(out.Data[(i*ranks+r)*b*d:], src)
		}
	}
	return out
}

// enqueue shifts each global crop's queue down by one batch and writes
// that crop's embeddings (crops [GlobalCrops, B, D]) at the top.
func (m *SwAV) enqueue(crops *tensor.Tensor) {
	l, d, b := m.Config.QueueLength, m.Config.ProjDim, crops.Shape[1]
	for i := range m.Config.GlobalCrops {
		q := m.Queue.Data[i*l*d : (i+1)*l*d]
		copy(q[b*d:], q[:(l-b)*d])
		copy(q[:b*d], crops.Data[i*b*d:(i+1)*b*d])
	}
	m.QueueFilled = min(m.QueueFilled+int64(b), int64(l))
}

// normalizeRows scales every row of a [K, D] matrix to unit length, as
// SwAV does to its prototypes before each iteration.
func normalizeRows(t *tensor.Tensor) {
	k, d := t.Shape[0], t.Shape[1]
	for r := range k {
		row := t.Data[r*d : (r+1)*d]
		var s float64
		for _, v := range row {
			s += float64(v) * float64(v)
		}
		inv := float32(1 / math.Max(math.Sqrt(s), normEps))
		for j := range row {
			row[j] *= inv
		}
	}
}
