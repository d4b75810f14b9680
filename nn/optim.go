package nn

import (
	"fmt"
	"math"
	"strings"

	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/weights"
)

// Optimizer updates parameters from their accumulated gradients.
type Optimizer interface {
	// Step applies one update. Parameters whose Grad is nil (never reached
	// by a backward pass) are skipped, as PyTorch skips grad=None.
	Step()
	// ZeroGrad clears every parameter's gradient.
	ZeroGrad()
	SetLR(lr float32)
	LR() float32
}

// OptimizerState is implemented by optimizers whose state (momentum
// buffers, moment estimates, step counts) can be saved and restored, which
// is what makes a resumed run continue bit for bit.
type OptimizerState interface {
	// StateTensors returns the state under names "optim.<param>.<slot>",
	// plus "optim.lr". The tensors are copies.
	StateTensors() map[string]*weights.Tensor
	// LoadStateTensors restores what StateTensors saved. Unknown or
	// missing slots, and shape mismatches, are errors.
	LoadStateTensors(map[string]*weights.Tensor) error
}

// optimPrefix starts every optimizer state name in a checkpoint.
const optimPrefix = "optim."

// paramKey is a parameter's name for optimizer state; unnamed parameters
// fall back to their position so state still round-trips.
func paramKey(p Param, i int) string {
	if p.Name != "" {
		return p.Name
	}
	return fmt.Sprintf("param%d", i)
}

// slotState holds per-parameter float buffers and counters under slot
// names, shared by all optimizers for saving and loading.
type slotState struct {
	params []Param
	slots  []string // float slot names, e.g. "momentum"
	bufs   []map[string]*tensor.Tensor
	steps  []int64 // per-parameter step counts (AdamW); nil when unused
	lr     *float32
}

func newSlotState(params []Param, lr *float32, withSteps bool, slots ...string) slotState {
	s := slotState{params: params, slots: slots, lr: lr, bufs: make([]map[string]*tensor.Tensor, len(params))}
	for i := range s.bufs {
		s.bufs[i] = map[string]*tensor.Tensor{}
	}
	if withSteps {
		s.steps = make([]int64, len(params))
	}
	return s
}

// buf returns parameter i's slot buffer, creating it zeroed on first use.
func (s *slotState) buf(i int, slot string) *tensor.Tensor {
	b := s.bufs[i][slot]
	if b == nil {
		b = tensor.New(s.params[i].Var.Value.Shape...)
		s.bufs[i][slot] = b
	}
	return b
}

func (s *slotState) StateTensors() map[string]*weights.Tensor {
	out := map[string]*weights.Tensor{}
	lr := tensor.FromSlice([]float32{*s.lr})
	lr.Shape = []int{}
	out[optimPrefix+"lr"] = weights.FromFloat32(lr)
	for i, p := range s.params {
		key := optimPrefix + paramKey(p, i) + "."
		for slot, b := range s.bufs[i] {
			out[key+slot] = weights.FromFloat32(b)
		}
		if s.steps != nil {
			out[key+"step"], _ = weights.FromInt64([]int{}, []int64{s.steps[i]})
		}
	}
	return out
}

func (s *slotState) LoadStateTensors(ts map[string]*weights.Tensor) error {
	known := map[string]bool{}
	var problems []string
	type job struct {
		i    int
		slot string
		v    *tensor.Tensor
	}
	var jobs []job
	stepVals := make([]int64, len(s.steps))

	lrT, ok := ts[optimPrefix+"lr"]
	known[optimPrefix+"lr"] = true
	var lr float32
	if !ok {
		problems = append(problems, "missing optim.lr")
	} else if v, err := lrT.Float32(); err != nil || len(v.Data) != 1 {
		problems = append(problems, fmt.Sprintf("optim.lr: not a scalar float (%v)", err))
	} else {
		lr = v.Data[0]
	}
	for i, p := range s.params {
		key := optimPrefix + paramKey(p, i) + "."
		for _, slot := range s.slots {
			name := key + slot
			t, ok := ts[name]
			if !ok {
				continue // buffers are created lazily: absent means not yet made
			}
			known[name] = true
			if !tensor.SameShape(t.Shape, p.Var.Value.Shape) {
				problems = append(problems, fmt.Sprintf("%s: shape %v, parameter shape %v", name, t.Shape, p.Var.Value.Shape))
				continue
			}
			v, err := t.Float32()
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", name, err))
				continue
			}
			jobs = append(jobs, job{i, slot, v})
		}
		if s.steps != nil {
			name := key + "step"
			t, ok := ts[name]
			if !ok {
				continue
			}
			known[name] = true
			v, err := t.Int64()
			if err != nil || len(v) != 1 {
				problems = append(problems, fmt.Sprintf("%s: not an integer scalar (%v)", name, err))
				continue
			}
			stepVals[i] = v[0]
		}
	}
	for name := range ts {
		if strings.HasPrefix(name, optimPrefix) && !known[name] {
			problems = append(problems, "unexpected "+name)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("load optimizer state: %s", strings.Join(problems, "; "))
	}
	*s.lr = lr
	for i := range s.bufs {
		s.bufs[i] = map[string]*tensor.Tensor{}
	}
	for _, j := range jobs {
		s.bufs[j.i][j.slot] = j.v
	}
	copy(s.steps, stepVals)
	return nil
}

func zeroGrads(params []Param) {
	for _, p := range params {
		p.Var.ZeroGrad()
	}
}

// SGDConfig holds torch.optim.SGD's hyperparameters.
type SGDConfig struct {
	LR          float32
	Momentum    float32
	Dampening   float32
	WeightDecay float32 // L2 penalty added to the gradient
	Nesterov    bool
}

// SGD is stochastic gradient descent with PyTorch's update rule:
//
//	g = grad + wd*p
//	buf = g on the first step, else momentum*buf + (1-dampening)*g
//	g = g + momentum*buf (Nesterov) or buf
//	p -= lr*g
type SGD struct {
	cfg    SGDConfig
	params []Param
	slotState
}

// NewSGD builds an SGD optimizer over params.
func NewSGD(params []Param, cfg SGDConfig) *SGD {
	o := &SGD{cfg: cfg, params: params}
	o.slotState = newSlotState(params, &o.cfg.LR, false, "momentum")
	return o
}

func (o *SGD) LR() float32      { return o.cfg.LR }
func (o *SGD) SetLR(lr float32) { o.cfg.LR = lr }
func (o *SGD) ZeroGrad()        { zeroGrads(o.params) }

func (o *SGD) Step() {
	c := o.cfg
	for i, p := range o.params {
		if p.Var.Grad == nil {
			continue
		}
		w, g := p.Var.Value.Data, p.Var.Grad.Data
		var buf []float32
		fresh := false
		if c.Momentum != 0 {
			fresh = o.bufs[i]["momentum"] == nil
			buf = o.buf(i, "momentum").Data
		}
		// Elements are independent, so splitting them over cores gives the
		// same bits as a serial loop; tensor.SGDUpdate is the vectorised
		// form of the update (bit-identical to its Go loop).
		tensor.Parallel(len(w), 4, func(lo, hi int) {
			var b []float32
			if buf != nil {
				b = buf[lo:hi]
			}
			tensor.SGDUpdate(w[lo:hi], g[lo:hi], b, c.LR, c.WeightDecay, c.Momentum, c.Dampening, c.Nesterov, fresh)
		})
	}
}

// LARSConfig holds LARS hyperparameters as the SimCLR and BYOL recipes use
// them.
type LARSConfig struct {
	LR          float32
	Momentum    float32 // 0.9 in both recipes
	WeightDecay float32
	// TrustCoefficient is eta in the trust ratio eta*||w||/||g||; 0 means
	// the recipes' 0.001.
	TrustCoefficient float32
	Nesterov         bool
	// ClipRatio caps the adapted rate at the learning rate: the update
	// uses min(eta*||w||/||g||, lr) in place of lr*eta*||w||/||g||. This is
	// the clip_lars_lr form solo-learn's CIFAR recipes run with eta 0.02;
	// at small batches its steps are far larger than the plain form's.
	ClipRatio bool
	// Exclude picks parameters that get neither weight decay nor trust-ratio
	// adaptation. nil means ExcludeBiasAndNorm.
	Exclude func(Param) bool
}

// ExcludeBiasAndNorm is the recipes' exclusion rule: biases (names ending in
// "bias") and every 1-D parameter, which covers BatchNorm/LayerNorm scales.
func ExcludeBiasAndNorm(p Param) bool {
	return strings.HasSuffix(p.Name, "bias") || len(p.Var.Value.Shape) <= 1
}

// LARS is layer-wise adaptive rate scaling, in the form of the SimCLR
// reference (TensorFlow LARSOptimizer, classic momentum) and BYOL's optax
// chain, which agree:
//
//	g = grad + wd*w                          (unless excluded)
//	r = eta*||w||/||g||, or 1 when either norm is 0 or w is excluded
//	v = momentum*v + lr*r*g                  (v starts at 0)
//	w -= v, or with Nesterov w -= momentum*v + lr*r*g
//
// With ClipRatio, lr*r becomes min(r, lr) for adapted parameters.
type LARS struct {
	cfg    LARSConfig
	params []Param
	slotState
}

// NewLARS builds a LARS optimizer over params.
func NewLARS(params []Param, cfg LARSConfig) *LARS {
	if cfg.TrustCoefficient == 0 {
		cfg.TrustCoefficient = 0.001
	}
	if cfg.Exclude == nil {
		cfg.Exclude = ExcludeBiasAndNorm
	}
	o := &LARS{cfg: cfg, params: params}
	o.slotState = newSlotState(params, &o.cfg.LR, false, "momentum")
	return o
}

func (o *LARS) LR() float32      { return o.cfg.LR }
func (o *LARS) SetLR(lr float32) { o.cfg.LR = lr }
func (o *LARS) ZeroGrad()        { zeroGrads(o.params) }

func (o *LARS) Step() {
	c := o.cfg
	for i, p := range o.params {
		if p.Var.Grad == nil {
			continue
		}
		w, g := p.Var.Value.Data, p.Var.Grad.Data
		excluded := c.Exclude(p)
		wd := c.WeightDecay
		if excluded {
			wd = 0
		}
		// Norms in float64: they are sums over up to millions of squares.
		// They stay serial so the result does not depend on the core count.
		var wn, gn float64
		for j := range w {
			d := float64(g[j] + wd*w[j])
			wn += float64(w[j]) * float64(w[j])
			gn += d * d
		}
		wn, gn = math.Sqrt(wn), math.Sqrt(gn)
		scaled := c.LR
		if !excluded && wn > 0 && gn > 0 {
			ratio := float32(float64(c.TrustCoefficient) * wn / gn)
			scaled = c.LR * ratio
			if c.ClipRatio {
				scaled = min(ratio, c.LR)
			}
		}
		v := o.buf(i, "momentum").Data
		tensor.Parallel(len(w), 4, func(lo, hi int) {
			for j := lo; j < hi; j++ {
				d := g[j] + wd*w[j]
				v[j] = c.Momentum*v[j] + scaled*d
				if c.Nesterov {
					w[j] -= c.Momentum*v[j] + scaled*d
				} else {
					w[j] -= v[j]
				}
			}
		})
	}
}

// AdamWConfig holds torch.optim.AdamW's hyperparameters. Zero Beta1, Beta2
// and Eps take PyTorch's defaults (0.9, 0.999, 1e-8); WeightDecay has no
// default here (PyTorch's is 0.01): zero means none.
type AdamWConfig struct {
	LR, Beta1, Beta2, Eps, WeightDecay float32
}

// AdamW is Adam with decoupled weight decay, step for step as PyTorch 1.13
// computes it:
//
//	p *= 1 - lr*wd
//	m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2
//	p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
type AdamW struct {
	cfg    AdamWConfig
	params []Param
	slotState
}

// NewAdamW builds an AdamW optimizer over params.
func NewAdamW(params []Param, cfg AdamWConfig) *AdamW {
	if cfg.Beta1 == 0 {
		cfg.Beta1 = 0.9
	}
	if cfg.Beta2 == 0 {
		cfg.Beta2 = 0.999
	}
	if cfg.Eps == 0 {
		cfg.Eps = 1e-8
	}
	o := &AdamW{cfg: cfg, params: params}
	o.slotState = newSlotState(params, &o.cfg.LR, true, "exp_avg", "exp_avg_sq")
	return o
}

func (o *AdamW) LR() float32      { return o.cfg.LR }
func (o *AdamW) SetLR(lr float32) { o.cfg.LR = lr }
func (o *AdamW) ZeroGrad()        { zeroGrads(o.params) }

func (o *AdamW) Step() {
	c := o.cfg
	for i, p := range o.params {
		if p.Var.Grad == nil {
			continue
		}
		o.steps[i]++
		t := float64(o.steps[i])
		// PyTorch computes the bias corrections in double and rounds the
		// step size once.
		bc1 := 1 - math.Pow(float64(c.Beta1), t)
		bc2 := math.Sqrt(1 - math.Pow(float64(c.Beta2), t))
		stepSize := float32(float64(c.LR) / bc1)
		invBC2 := float32(bc2)
		decay := float32(1 - float64(c.LR)*float64(c.WeightDecay))
		w, g := p.Var.Value.Data, p.Var.Grad.Data
		m, v := o.buf(i, "exp_avg").Data, o.buf(i, "exp_avg_sq").Data
		tensor.Parallel(len(w), 10, func(lo, hi int) {
			for j := lo; j < hi; j++ {
				if c.WeightDecay != 0 {
					w[j] *= decay
				}
				m[j] = c.Beta1*m[j] + (1-c.Beta1)*g[j]
				v[j] = c.Beta2*v[j] + (1-c.Beta2)*g[j]*g[j]
				denom := float32(math.Sqrt(float64(v[j])))/invBC2 + c.Eps
				w[j] -= stepSize * m[j] / denom
			}
		})
	}
}

// ClipGradNorm scales all gradients down so that their joint L2 norm is at
// most maxNorm, like torch.nn.utils.clip_grad_norm_ (scale
// maxNorm/(norm+1e-6), applied only when below 1). It returns the norm
// before clipping. Parameters without gradients are ignored.
func ClipGradNorm(params []Param, maxNorm float64) float64 {
	var ss float64
	for _, p := range params {
		if p.Var.Grad == nil {
			continue
		}
		for _, g := range p.Var.Grad.Data {
			ss += float64(g) * float64(g)
		}
	}
	norm := math.Sqrt(ss)
	coef := maxNorm / (norm + 1e-6)
	if coef < 1 {
		c := float32(coef)
		for _, p := range params {
			if p.Var.Grad == nil {
				continue
			}
			for j := range p.Var.Grad.Data {
				p.Var.Grad.Data[j] *= c
			}
		}
	}
	return norm
}
