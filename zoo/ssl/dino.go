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

// dinoGlobalCrops is the number of leading views the teacher sees: DINO's
// two global crops.
const dinoGlobalCrops = 2

// DINOConfig configures DINO (Caron et al. 2021, "Emerging Properties in
// Self-Supervised Vision Transformers").
type DINOConfig struct {
	// HeadHidden and Bottleneck size the head's MLP (2048 -> 2048 -> 256,
	// GELU between, no BatchNorm); Prototypes is K, the width of its
	// weight-normalised last layer.
	//
	// The paper's K is 65536 for ImageNet. The default here is 4096 (also
	// solo-learn's CIFAR setting): the data sets this zoo trains on hold
	// 10^4-10^5 images, fewer than 65536 prototypes, and at 4096 the last
	// layer (256 x K) is no bigger than the MLP's middle layer, where at
	// 65536 its 16.8M weights would dominate a CPU step. Unlike the twin
	// methods' projectors it does not scale with the backbone: the layer
	// reads the fixed 256-wide bottleneck, whatever the backbone's width.
	HeadHidden, Bottleneck, Prototypes int
	// StudentTemp is the student's softmax temperature (0.1).
	StudentTemp float32
	// The teacher's temperature rises linearly from WarmupTeacherTemp
	// (0.04) to TeacherTemp (0.07) over TeacherTempWarmupSteps (the paper's
	// 30 epochs, shortened like the learning-rate warmup for short runs:
	// warmupOf), then stays there.
	WarmupTeacherTemp, TeacherTemp float32
	TeacherTempWarmupSteps         int
	// CenterMomentum is the EMA momentum of the centre (0.9).
	CenterMomentum float64
	// BaseMomentum is the teacher's EMA momentum at step 0 (0.996); it
	// rises to 1 on a cosine over MomentumSteps (0 means
	// Optim.TotalSteps).
	BaseMomentum  float64
	MomentumSteps int
	// FreezeLastLayerSteps keeps the head's last layer fixed for the first
	// iterations (the paper's first epoch, capped at a tenth of the run:
	// freezeOf), which the paper found to stabilise the start.
	FreezeLastLayerSteps int
	// ClipGrad caps each student parameter's gradient norm on its own, as
	// DINO's clip_gradients does (3.0; 0: no clipping).
	ClipGrad float64
	// FinalWeightDecay is where the weight decay ends: it moves on a
	// cosine from Optim.WeightDecay at step 0 to FinalWeightDecay at
	// Optim.TotalSteps (the ViT recipe's 0.04 -> 0.4; equal values keep it
	// constant). Biases and 1-D parameters get none (nn.ExcludeBiasAndNorm,
	// DINO's unregularised group).
	FinalWeightDecay float64
	Optim            OptimConfig
}

// DefaultDINOConfig is the paper's recipe for the backbone's family. For a
// ViT: AdamW with learning rate 0.0005*batch/256, 10 warmup epochs, cosine
// decay to 1e-6, weight decay 0.04 rising to 0.4 on a cosine. For a ResNet:
// the official ResNet-50 run's SGD at 0.03*batch/256 with momentum 0.9
// and a constant weight decay of 1e-4 (its README; AdamW with decay up to
// 0.4 is a ViT setting). Both: head 2048-2048-256 then K prototypes (4096
// here, see DINOConfig), student temperature 0.1, teacher temperature 0.04
// rising to 0.07 over 30 epochs, centre momentum 0.9, teacher momentum
// 0.996 rising to 1, the last layer frozen for the first epoch, gradients
// clipped at 3.0 per parameter. AdamW, SGD and LARS are this package's
// optimizers, so the recipe needs nothing else; the paper's per-epoch
// schedules run per step here.
func DefaultDINOConfig(backbone Encoder, batch, stepsPerEpoch, epochs int) DINOConfig {
	c := DINOConfig{
		HeadHidden: 2048, Bottleneck: 256, Prototypes: 4096, StudentTemp: 0.1, WarmupTeacherTemp: 0.04, TeacherTemp: 0.07,
		TeacherTempWarmupSteps: warmupOf(30, epochs, stepsPerEpoch), CenterMomentum: 0.9, BaseMomentum: 0.996,
		FreezeLastLayerSteps: freezeOf(1, epochs, stepsPerEpoch), ClipGrad: 3,
	}
	total := epochs * stepsPerEpoch
	if _, vit := backbone.(*zoo.ViT); vit {
		lr := scaleLR(5e-4, batch)
		c.Optim = OptimConfig{Name: "adamw", LR: lr, FinalLR: min(1e-6, lr), WeightDecay: 0.04,
			WarmupSteps: warmupOf(10, epochs, stepsPerEpoch), TotalSteps: total}
		c.FinalWeightDecay = 0.4
		return c
	}
	lr := scaleLR(0.03, batch)
	c.Optim = OptimConfig{Name: "sgd", LR: lr, FinalLR: min(1e-6, lr), Momentum: 0.9, WeightDecay: 1e-4,
		WarmupSteps: warmupOf(10, epochs, stepsPerEpoch), TotalSteps: total}
	c.FinalWeightDecay = 1e-4
	return c
}

// DINOHead is DINO's projection head: an MLP of Linear-GELU, Linear-GELU,
// Linear to the bottleneck, L2 normalisation, then a weight-normalised
// Linear without bias to K outputs, W = g * v/||v|| row by row. g stays at
// 1 (the reference's norm_last_layer), so the last layer scores the
// normalised bottleneck against K unit prototypes. State names are the
// reference's: "mlp.0.weight" ... "mlp.4.bias", "last_layer.weight_g"
// [K, 1], "last_layer.weight_v" [K, bottleneck].
type DINOHead struct {
	MLP              *nn.MLP
	WeightG, WeightV *autograd.Var
}

// newDINOHead builds a head with the reference's initialisation: the MLP's
// weights from a normal of std 0.02 (truncated at ±2, as timm's
// trunc_normal_), zero biases; the last layer's v PyTorch's default Linear
// initialisation, g ones.
func newDINOHead(in, hidden, bottleneck, k int, rng *rand.Rand) (*DINOHead, error) {
	mlp, err := nn.NewMLP(nn.MLPConfig{Dims: []int{in, hidden, hidden, bottleneck}, Activation: "gelu"}, rng)
	if err != nil {
		return nil, err
	}
	for _, p := range nn.StateOf(mlp).Params {
		if len(p.Var.Value.Shape) == 2 {
			nn.TruncNormal(p.Var.Value, 0, 0.02, -2, 2, rng)
		} else {
			p.Var.Value.Zero()
		}
	}
	if k < 1 {
		return nil, fmt.Errorf("dino head: %d prototypes", k)
	}
	last := nn.NewLinear(bottleneck, k, false, rng)
	g := tensor.New(k, 1)
	g.Fill(1)
	h := &DINOHead{MLP: mlp, WeightG: autograd.NewParam("weight_g", g), WeightV: last.Weight}
	h.WeightG.SetRequiresGrad(false)
	return h, nil
}

func (h *DINOHead) Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	z := tp.L2Normalize(h.MLP.Forward(tp, x), 1, normEps)
	w := tp.Mul(tp.L2Normalize(h.WeightV, 1, normEps), h.WeightG)
	return tp.MatMulT(z, w, false, true)
}

func (h *DINOHead) CollectState(prefix string, s *nn.State) {
	h.MLP.CollectState(nn.Join(prefix, "mlp"), s)
	s.Params = append(s.Params, nn.Param{Name: nn.Join(prefix, "last_layer.weight_g"), Var: h.WeightG},
		nn.Param{Name: nn.Join(prefix, "last_layer.weight_v"), Var: h.WeightV})
}

func (h *DINOHead) SetTraining(on bool) { h.MLP.SetTraining(on) }

// DINO trains a student network to match, on every crop of an image, the
// output distribution a teacher network gives for the image's global
// crops. The teacher is an EMA of the student (saved under "target_", as
// the other methods' target networks); its outputs are centred by a
// running mean and sharpened by a low temperature, which together keep it
// from collapsing to one prototype or to the uniform distribution.
//
// Data parallelism gathers one thing: the teacher outputs of every rank,
// so that the batch mean that updates the centre (UpdateDINOCenter) is the
// global batch's. The loss is per image (DINOLoss) and the head has no
// BatchNorm; a ResNet backbone's BatchNorm is synchronised by Train.
type DINO struct {
	Config                  DINOConfig
	Encoder, TeacherEncoder Encoder
	Head, TeacherHead       *DINOHead
	// Center holds the K running means of the teacher's outputs, saved as
	// "center".
	Center *tensor.Tensor
	parts
	opt nn.Optimizer
	ema *nn.EMA
	// params are the optimizer's; decayed the ones weight decay applies to.
	params, decayed []nn.Param
}

// NewDINO wraps backbone with DINO's head, a teacher copy of both, the
// centre and the optimizer.
func NewDINO(cfg DINOConfig, backbone Encoder, rng *rand.Rand) (*DINO, error) {
	switch {
	case cfg.HeadHidden < 1 || cfg.Bottleneck < 1 || cfg.Prototypes < 1:
		return nil, fmt.Errorf("dino: head %d -> %d -> %d prototypes: sizes must be positive", cfg.HeadHidden, cfg.Bottleneck, cfg.Prototypes)
	case !(cfg.StudentTemp > 0) || !(cfg.TeacherTemp > 0) || !(cfg.WarmupTeacherTemp > 0):
		return nil, fmt.Errorf("dino: temperatures %g (student), %g -> %g (teacher) must be positive", cfg.StudentTemp, cfg.WarmupTeacherTemp, cfg.TeacherTemp)
	case !(cfg.CenterMomentum >= 0 && cfg.CenterMomentum <= 1) || !(cfg.BaseMomentum >= 0 && cfg.BaseMomentum <= 1):
		return nil, fmt.Errorf("dino: centre momentum %g and teacher momentum %g must lie in [0, 1]", cfg.CenterMomentum, cfg.BaseMomentum)
	case cfg.TeacherTempWarmupSteps < 0 || cfg.FreezeLastLayerSteps < 0 || cfg.MomentumSteps < 0:
		return nil, fmt.Errorf("dino: warmup %d, freeze %d and momentum %d steps must be non-negative", cfg.TeacherTempWarmupSteps, cfg.FreezeLastLayerSteps, cfg.MomentumSteps)
	case !(cfg.ClipGrad >= 0) || math.IsInf(cfg.ClipGrad, 0) || !(cfg.FinalWeightDecay >= 0) || math.IsInf(cfg.FinalWeightDecay, 0):
		return nil, fmt.Errorf("dino: gradient clip %g and final weight decay %g must be finite and non-negative", cfg.ClipGrad, cfg.FinalWeightDecay)
	}
	if cfg.MomentumSteps == 0 {
		cfg.MomentumSteps = cfg.Optim.TotalSteps
	}
	m := &DINO{Config: cfg, Encoder: backbone, Center: tensor.New(cfg.Prototypes)}
	var err error
	if m.Head, err = newDINOHead(backbone.FeatureDim(), cfg.HeadHidden, cfg.Bottleneck, cfg.Prototypes, rng); err != nil {
		return nil, fmt.Errorf("dino: head: %w", err)
	}
	if m.TeacherEncoder, err = cloneEncoder(backbone, rng); err != nil {
		return nil, fmt.Errorf("dino: %w", err)
	}
	if m.TeacherHead, err = newDINOHead(backbone.FeatureDim(), cfg.HeadHidden, cfg.Bottleneck, cfg.Prototypes, rng); err != nil {
		return nil, fmt.Errorf("dino: head: %w", err)
	}
	if err := nn.CopyState(m.TeacherHead, m.Head); err != nil {
		return nil, fmt.Errorf("dino: %w", err)
	}
	online := group{{"backbone", backbone, true}, {"head", m.Head, true}}
	target := group{{"target_backbone", m.TeacherEncoder, false}, {"target_head", m.TeacherHead, false}}
	m.list = append(append(group{}, online...), target...)
	m.buffers = func(prefix string, s *nn.State) {
		s.Buffers = append(s.Buffers, nn.Buffer{Name: nn.Join(prefix, "center"), T: m.Center})
	}
	if m.ema, err = newEMA(online, target, cfg.BaseMomentum, cfg.MomentumSteps); err != nil {
		return nil, fmt.Errorf("dino: %w", err)
	}
	for _, p := range m.trainable() {
		if !p.Var.RequiresGrad() {
			continue // the last layer's g
		}
		m.params = append(m.params, p)
		if !nn.ExcludeBiasAndNorm(p) {
			m.decayed = append(m.decayed, p)
		}
	}
	// The optimizer runs without decay of its own: the step applies the
	// scheduled decay to the decayed parameters (applyWeightDecay).
	oc := cfg.Optim
	oc.WeightDecay = 0
	if err := cfg.Optim.validate(); err != nil {
		return nil, fmt.Errorf("dino: optimizer %q: %w", cfg.Optim.Name, err)
	}
	if m.opt, err = oc.build(m.params); err != nil {
		return nil, fmt.Errorf("dino: %w", err)
	}
	m.SetTraining(true)
	return m, nil
}

func (m *DINO) Name() string            { return "dino" }
func (m *DINO) Backbone() Encoder       { return m.Encoder }
func (m *DINO) Optimizer() nn.Optimizer { return m.opt }
func (m *DINO) Configuration() any      { return m.Config }
func (m *DINO) Schedule() OptimConfig   { return m.Config.Optim }

// TargetMomentum is the teacher's EMA momentum applied after iteration
// step.
func (m *DINO) TargetMomentum(step int64) float64 { return m.ema.Momentum(int(step)) }

// TeacherTemp is the teacher's temperature at iteration step.
func (m *DINO) TeacherTemp(step int64) float32 {
	c := m.Config
	if step >= int64(c.TeacherTempWarmupSteps) {
		return c.TeacherTemp
	}
	f := float64(step) / float64(c.TeacherTempWarmupSteps)
	return float32(float64(c.WarmupTeacherTemp) + (float64(c.TeacherTemp)-float64(c.WarmupTeacherTemp))*f)
}

// WeightDecayAt is the weight decay of iteration step.
func (m *DINO) WeightDecayAt(step int64) float64 {
	o := m.Config.Optim
	if o.TotalSteps <= 0 {
		return o.WeightDecay
	}
	return nn.WarmupCosine(int(min(step, int64(o.TotalSteps))), 0, o.TotalSteps, o.WeightDecay, m.Config.FinalWeightDecay)
}

// LastLayerFrozen reports whether the head's last layer is held fixed at
// iteration step.
func (m *DINO) LastLayerFrozen(step int64) bool { return step < int64(m.Config.FreezeLastLayerSteps) }

// Step runs one DINO iteration on the crops of a batch: the first two
// views are the global crops (the teacher's input, one batch), the rest
// local crops, smaller images allowed. The student encodes each run of
// same-size crops as one batch and its head sees all crops at once, as in
// the reference. After the optimizer step the teacher moves towards the
// student with this step's momentum, and the centre towards the mean of
// this step's teacher outputs.
func (m *DINO) Step(tp *autograd.Tape, views []*tensor.Tensor) (float32, error) {
	if err := checkViews("dino", views, dinoGlobalCrops, false); err != nil {
		return 0, err
	}
	if !tensor.SameShape(views[0].Shape, views[1].Shape) {
		return 0, fmt.Errorf("dino: global crops of shapes %v and %v: the teacher takes them as one batch", views[0].Shape, views[1].Shape)
	}
	b, step := views[0].Shape[0], m.steps
	var teacher *autograd.Var
	return runStep(tp, "dino", &m.parts, m.opt, m.Config.Optim, func() (*autograd.Var, error) {
		m.Head.WeightV.SetRequiresGrad(!m.LastLayerFrozen(step))
		tp.NoGrad(func() {
			teacher = m.TeacherHead.Forward(tp, m.TeacherEncoder.Features(tp, concatViews(tp, views[:dinoGlobalCrops])))
		})
		student := m.Head.Forward(tp, multiCropFeatures(tp, m.Encoder, views))
		return DINOLoss(tp, student, teacher, m.Center, DINOLossConfig{Batch: b,
			StudentTemp: m.Config.StudentTemp, TeacherTemp: m.TeacherTemp(step)}), nil
	}, func() {
		if c := m.Config.ClipGrad; c > 0 {
			for _, p := range m.params {
				nn.ClipGradNorm([]nn.Param{p}, c)
			}
		}
		m.applyWeightDecay(step)
		m.opt.Step()
		m.ema.Update(int(step))
		if err := UpdateDINOCenter(m.Center, m.gatherValues("dino", teacher.Value), m.Config.CenterMomentum); err != nil {
			autograd.Failf("dino", "%v", err)
		}
	})
}

// applyWeightDecay applies step's weight decay to the decayed parameters
// that have a gradient (the optimizer skips the others, as PyTorch skips a
// frozen layer's) the way the optimizer itself would: AdamW's decoupled
// decay shrinks the weights before the update, as torch.optim.AdamW does;
// SGD's and LARS's is an L2 term added to the gradient before the update.
func (m *DINO) applyWeightDecay(step int64) {
	wd := float32(m.WeightDecayAt(step))
	if wd == 0 {
		return
	}
	keep := float32(1 - float64(m.opt.LR())*float64(wd))
	for _, p := range m.decayed {
		if p.Var.Grad == nil {
			continue
		}
		w, g := p.Var.Value.Data, p.Var.Grad.Data
		adamw := m.Config.Optim.Name == "adamw"
		tensor.Parallel(len(w), 2, func(lo, hi int) {
			for j := lo; j < hi; j++ {
				if adamw {
					w[j] *= keep
				} else {
					g[j] += wd * w[j]
				}
			}
		})
	}
}
