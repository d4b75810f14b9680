package ssl

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/zoo"
)

// Encoder is a backbone a method trains: it maps images [N, C, H, W] to
// pooled features [N, FeatureDim]. zoo.ResNet and zoo.ViT implement it.
type Encoder interface {
	nn.Module
	FeatureDim() int
	Features(tp *autograd.Tape, x *autograd.Var) *autograd.Var
}

// Cloner is implemented by encoders of other types than zoo.ResNet and
// zoo.ViT that a method with a target network can copy.
type Cloner interface {
	// CloneEncoder returns a new encoder of the same architecture; its
	// weights are overwritten by the caller.
	CloneEncoder(rng *rand.Rand) (Encoder, error)
}

// Method is the interface every SSL method implements.
type Method interface {
	nn.Module
	// Name is the method's registry name, e.g. "simclr".
	Name() string
	// Step runs one training iteration (forward, backward, optimizer,
	// target update) on the views of one batch, each [N, C, H, W], and
	// returns the loss. It resets tp when it returns. A non-finite input or
	// loss is an error and leaves the parameters untouched (after a
	// non-finite loss, BatchNorm running statistics have seen the batch).
	Step(tp *autograd.Tape, views []*tensor.Tensor) (float32, error)
	// Backbone is the online encoder, the network evaluation and export
	// use. Its state lives under "backbone." in the method's state.
	Backbone() Encoder
	// Optimizer is the method's optimizer, e.g. for checkpoints.
	Optimizer() nn.Optimizer
	// Steps is the number of completed iterations; the schedules read it,
	// and it is saved in the state as "steps".
	Steps() int64
	// Configuration is the method's config struct (e.g. SimCLRConfig), for
	// recording with a checkpoint; it marshals to JSON.
	Configuration() any
	// Schedule is the method's optimizer and learning-rate schedule, the
	// peak rate included (the optimizer's own rate moves with the warmup).
	Schedule() OptimConfig
}

// OptimConfig is a method's optimizer and learning-rate schedule: linear
// warmup from 0 to LR over WarmupSteps, then a half-cosine to FinalLR at
// TotalSteps. TotalSteps 0 keeps LR constant after the warmup. The recipes
// give LR per 256 images; the Default*Config functions scale it to the
// batch size.
type OptimConfig struct {
	// Name is "lars", "sgd" or "adamw".
	Name                    string
	LR, FinalLR             float64
	WarmupSteps, TotalSteps int
	// Momentum is for SGD and LARS.
	Momentum    float64
	WeightDecay float64
	// TrustCoefficient is LARS's eta (0 means 0.001).
	TrustCoefficient float64
	// ClipTrustRatio caps LARS's adapted rate at the learning rate
	// (nn.LARSConfig.ClipRatio), as solo-learn's CIFAR recipes do.
	ClipTrustRatio bool `json:",omitempty"`
	// AdaptAll makes LARS adapt and decay every parameter, biases and
	// normalisation weights included, as SwAV's LARC wrapper does; by
	// default they are excluded, as in SimCLR, BYOL and MoCo v3.
	AdaptAll bool
	// Beta1 and Beta2 are AdamW's (0 means PyTorch's 0.9 and 0.999).
	Beta1, Beta2 float64
}

// LRAt is the learning rate of iteration step (from 0).
func (c OptimConfig) LRAt(step int64) float64 {
	if c.TotalSteps <= 0 {
		if step < int64(c.WarmupSteps) {
			return c.LR * float64(step) / float64(c.WarmupSteps)
		}
		return c.LR
	}
	return nn.WarmupCosine(int(min(step, int64(c.TotalSteps))), c.WarmupSteps, c.TotalSteps, c.LR, c.FinalLR)
}

func (c OptimConfig) validate() error {
	switch {
	case !(c.LR >= 0) || math.IsInf(c.LR, 0) || !(c.FinalLR >= 0):
		return fmt.Errorf("learning rates %g -> %g must be finite and non-negative", c.LR, c.FinalLR)
	case c.WarmupSteps < 0 || c.TotalSteps < 0:
		return fmt.Errorf("warmup %d and total %d steps must be non-negative", c.WarmupSteps, c.TotalSteps)
	case c.TotalSteps > 0 && c.WarmupSteps > c.TotalSteps:
		return fmt.Errorf("warmup of %d steps is longer than the %d-step run", c.WarmupSteps, c.TotalSteps)
	case !(c.WeightDecay >= 0) || !(c.Momentum >= 0 && c.Momentum < 1):
		return fmt.Errorf("weight decay %g and momentum %g must lie in [0, inf) and [0, 1)", c.WeightDecay, c.Momentum)
	}
	return nil
}

func (c OptimConfig) build(params []nn.Param) (nn.Optimizer, error) {
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("optimizer %q: %w", c.Name, err)
	}
	lr := float32(c.LRAt(0))
	switch c.Name {
	case "lars":
		lc := nn.LARSConfig{LR: lr, Momentum: float32(c.Momentum), WeightDecay: float32(c.WeightDecay),
			TrustCoefficient: float32(c.TrustCoefficient), ClipRatio: c.ClipTrustRatio}
		if c.AdaptAll {
			lc.Exclude = func(nn.Param) bool { return false }
		}
		return nn.NewLARS(params, lc), nil
	case "sgd":
		return nn.NewSGD(params, nn.SGDConfig{LR: lr, Momentum: float32(c.Momentum), WeightDecay: float32(c.WeightDecay)}), nil
	case "adamw":
		return nn.NewAdamW(params, nn.AdamWConfig{LR: lr, Beta1: float32(c.Beta1), Beta2: float32(c.Beta2), WeightDecay: float32(c.WeightDecay)}), nil
	}
	return nil, fmt.Errorf("unknown optimizer %q (lars, sgd or adamw)", c.Name)
}

// warmupOf is the recipes' warmup length in steps: warmupEpochs epochs,
// shortened to a tenth of the run when the run is shorter than ten times
// that, so that short runs still spend most of their steps at a useful rate.
func warmupOf(warmupEpochs, epochs, stepsPerEpoch int) int {
	w := warmupEpochs
	if epochs < 10*warmupEpochs {
		w = epochs / 10
	}
	return w * stepsPerEpoch
}

// scaleLR applies the linear scaling rule lr = base * batch / 256.
func scaleLR(base float64, batch int) float64 { return base * float64(batch) / 256 }

// cloneEncoder builds a second encoder of e's architecture holding a copy
// of its weights and buffers (the start of a target network).
func cloneEncoder(e Encoder, rng *rand.Rand) (Encoder, error) {
	var c Encoder
	var err error
	switch m := e.(type) {
	case *zoo.ResNet:
		c, err = zoo.NewResNet(m.Config, rng)
	case *zoo.ViT:
		c, err = zoo.NewViT(m.Config, rng)
	case Cloner:
		c, err = m.CloneEncoder(rng)
	default:
		return nil, fmt.Errorf("cannot copy an encoder of type %T for the target network (implement ssl.Cloner)", e)
	}
	if err != nil {
		return nil, fmt.Errorf("copy encoder: %w", err)
	}
	if err := nn.CopyState(c, e); err != nil {
		return nil, fmt.Errorf("copy encoder: %w", err)
	}
	return c, nil
}

// Head is a projection or prediction head.
type Head interface {
	nn.Module
	Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var
}

// newMLPHead is the SimCLR/BYOL/SwAV head: Linear (with bias), BatchNorm1d,
// ReLU for each hidden layer, then a plain Linear, named "0.weight",
// "1.running_mean", ... as the PyTorch nn.Sequential heads are.
func newMLPHead(dims []int, batchNorm bool, rng *rand.Rand) (Head, error) {
	return nn.NewMLP(nn.MLPConfig{Dims: dims, BatchNorm: batchNorm}, rng)
}

// newBiasFreeMLP is MoCo v3's _build_mlp: every Linear without bias; hidden
// layers followed by BatchNorm1d and ReLU; with lastBN, a final BatchNorm1d
// without affine parameters. Without lastBN it is also Barlow Twins'
// projector and VICReg's expander; with it, SimSiam's projector (whose
// reference keeps a frozen bias before that BatchNorm, which cancels it).
func newBiasFreeMLP(layers, in, hidden, out int, lastBN bool, rng *rand.Rand) (Head, error) {
	if layers < 1 || in < 1 || hidden < 1 || out < 1 {
		return nil, fmt.Errorf("mlp: %d layers of sizes %d -> %d -> %d", layers, in, hidden, out)
	}
	var ls []nn.Layer
	for l := range layers {
		d1, d2 := hidden, hidden
		if l == 0 {
			d1 = in
		}
		if l == layers-1 {
			d2 = out
		}
		ls = append(ls, nn.NewLinear(d1, d2, false, rng))
		if l < layers-1 {
			ls = append(ls, nn.NewBatchNorm(d2), nn.ReLU{})
		} else if lastBN {
			bn := nn.NewBatchNorm(d2)
			bn.Weight, bn.Bias = nil, nil
			ls = append(ls, bn)
		}
	}
	return nn.NewSequential(ls...), nil
}

// part is a named piece of a method's state.
type part struct {
	name      string
	m         nn.Module
	trainable bool
}

// group is a list of named modules acting as one nn.Module (e.g. encoder
// plus projector, the unit a target network averages).
type group []part

func (g group) CollectState(prefix string, s *nn.State) {
	for _, q := range g {
		q.m.CollectState(nn.Join(prefix, q.name), s)
	}
}

// SetTraining switches every part; target networks stay in training mode
// as in the reference code (their BatchNorm uses batch statistics).
func (g group) SetTraining(on bool) {
	for _, q := range g {
		q.m.SetTraining(on)
	}
}

// parts is the common state plumbing of the methods: the named modules,
// the step counter and extra buffers.
type parts struct {
	list    group
	steps   int64
	buffers func(prefix string, s *nn.State)
	world
}

func (p *parts) CollectState(prefix string, s *nn.State) {
	p.list.CollectState(prefix, s)
	if p.buffers != nil {
		p.buffers(prefix, s)
	}
	s.Buffers = append(s.Buffers, nn.Buffer{Name: nn.Join(prefix, "steps"), Count: &p.steps})
}

func (p *parts) SetTraining(on bool) { p.list.SetTraining(on) }

func (p *parts) Steps() int64 { return p.steps }

// trainable lists the parameters the optimizer updates, under their full
// state names.
func (p *parts) trainable() []nn.Param {
	s := &nn.State{}
	for _, q := range p.list {
		if q.trainable {
			q.m.CollectState(q.name, s)
		}
	}
	for _, prm := range s.Params {
		prm.Var.Name = prm.Name
	}
	return s.Params
}

// checkViews validates a batch of views: at least min of them (exactly min
// when exact), each [N, C, H, W] with the same N > 1 and C.
func checkViews(method string, views []*tensor.Tensor, n int, exact bool) error {
	if len(views) < n || exact && len(views) != n {
		want := fmt.Sprintf("%d", n)
		if !exact {
			want = "at least " + want
		}
		return fmt.Errorf("%s: got %d views, want %s", method, len(views), want)
	}
	for i, v := range views {
		if v == nil || len(v.Shape) != 4 || v.Numel() != len(v.Data) {
			var shape []int
			if v != nil {
				shape = v.Shape
			}
			return fmt.Errorf("%s: view %d shape %v: need [N, C, H, W]", method, i, shape)
		}
		if v.Shape[0] < 2 {
			return fmt.Errorf("%s: view %d has batch %d; BatchNorm and contrastive losses need at least 2 images", method, i, v.Shape[0])
		}
		if v.Shape[0] != views[0].Shape[0] || v.Shape[1] != views[0].Shape[1] {
			return fmt.Errorf("%s: view %d shape %v does not match view 0 shape %v in batch or channels", method, i, v.Shape, views[0].Shape)
		}
		// A NaN pixel would reach BatchNorm's running statistics before the
		// loss could reveal it.
		for j, x := range v.Data {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("%s: view %d element %d is %g", method, i, j, x)
			}
		}
	}
	return nil
}

// concatViews stacks views of equal shape into one batch in a tape buffer.
func concatViews(tp *autograd.Tape, views []*tensor.Tensor) *autograd.Var {
	if len(views) == 1 {
		return autograd.Const(views[0])
	}
	s := views[0].Shape
	out := tp.Alloc(len(views)*s[0], s[1], s[2], s[3])
	off := 0
	for _, v := range views {
		off += copy(out.Data[off:], v.Data)
	}
	return autograd.Const(out)
}

// multiCropFeatures encodes crops as SwAV's and DINO's multi-crop wrappers
// do: each run of consecutive views of one size goes through the encoder
// as one batch (so BatchNorm sees those crops together), and the features
// of all crops are stacked crop by crop, [len(views)*N, FeatureDim].
func multiCropFeatures(tp *autograd.Tape, enc Encoder, views []*tensor.Tensor) *autograd.Var {
	var feats []*autograd.Var
	for lo := 0; lo < len(views); {
		hi := lo + 1
		for hi < len(views) && tensor.SameShape(views[hi].Shape, views[lo].Shape) {
			hi++
		}
		feats = append(feats, enc.Features(tp, concatViews(tp, views[lo:hi])))
		lo = hi
	}
	if len(feats) == 1 {
		return feats[0]
	}
	return tp.Concat(feats, 0)
}

// runStep wraps one training iteration: it sets the learning rate, clears
// gradients, runs body (which returns the loss Var), checks the loss is
// finite, backpropagates, calls update (optimizer step and target updates),
// counts the step and resets the tape. Op shape errors become errors.
// On several ranks the loss it checks and returns is the mean over the
// ranks, and the gradients are averaged over them before update.
func runStep(tp *autograd.Tape, method string, p *parts, opt nn.Optimizer, oc OptimConfig,
	body func() (*autograd.Var, error), update func()) (loss float32, err error) {
	defer tp.Reset()
	opt.SetLR(float32(oc.LRAt(p.steps)))
	opt.ZeroGrad()
	var l *autograd.Var
	if cerr := autograd.Catch(func() { l, err = body() }); cerr != nil {
		return 0, fmt.Errorf("%s step %d: %w", method, p.steps, cerr)
	}
	if err != nil {
		return 0, fmt.Errorf("%s step %d: %w", method, p.steps, err)
	}
	if loss, err = p.meanLoss(l.Value.Data[0]); err != nil {
		return loss, fmt.Errorf("%s step %d: %w", method, p.steps, err)
	}
	if math.IsNaN(float64(loss)) || math.IsInf(float64(loss), 0) {
		return loss, fmt.Errorf("%s step %d: loss is %g; weights left as they were", method, p.steps, loss)
	}
	// Backward runs the cross-rank ops' collectives, which fail as panics.
	if cerr := autograd.Catch(func() { err = tp.Backward(l) }); cerr != nil {
		return loss, fmt.Errorf("%s step %d: %w", method, p.steps, cerr)
	}
	if err != nil {
		return loss, fmt.Errorf("%s step %d: %w", method, p.steps, err)
	}
	if p.parallel() {
		if err := p.averageGrads(p.trainable()); err != nil {
			return loss, fmt.Errorf("%s step %d: %w", method, p.steps, err)
		}
	}
	if cerr := autograd.Catch(update); cerr != nil {
		return loss, fmt.Errorf("%s step %d: %w", method, p.steps, cerr)
	}
	p.steps++
	return loss, nil
}

// newEMA pairs an online and a target group whose part names differ only
// by the target's "target_" prefix (nn.EMA matches parameters by name).
func newEMA(online, target group, base float64, totalSteps int) (*nn.EMA, error) {
	if len(online) != len(target) {
		return nil, fmt.Errorf("ema: %d online and %d target parts", len(online), len(target))
	}
	renamed := make(group, len(target))
	for i, q := range target {
		renamed[i] = part{online[i].name, q.m, false}
	}
	return nn.NewEMA(online, renamed, base, totalSteps)
}
