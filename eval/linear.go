package eval

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/sslzoo/sslzoo/nn"
)

// LinearConfig configures the linear probe: softmax regression on frozen
// features standardised with the training set's per-feature mean and
// standard deviation, trained by mini-batch SGD with momentum, weight decay
// on the weights and a cosine learning-rate decay to 0.
type LinearConfig struct {
	Epochs      int
	Batch       int
	LR          float64
	Momentum    float64
	WeightDecay float64
	Seed        uint64 // shuffling
	// Classes is the number of classes; 0 means one more than the largest
	// label of train or test.
	Classes int
}

// DefaultLinear suits feature sets of thousands to tens of thousands of
// samples: 30 epochs of batch 256 at learning rate 0.1, momentum 0.9,
// weight decay 1e-5.
func DefaultLinear() LinearConfig {
	return LinearConfig{Epochs: 30, Batch: 256, LR: 0.1, Momentum: 0.9, WeightDecay: 1e-5, Seed: 1}
}

// LinearModel is a trained probe: class scores are W·((x - Mean) / Std) + B.
type LinearModel struct {
	D, Classes int
	Mean, Std  []float32 // D
	W          []float32 // Classes x D
	B          []float32 // Classes
}

// Scores returns the logits [f.N, Classes].
func (m *LinearModel) Scores(f *Features) ([]float32, error) {
	if f.D != m.D {
		return nil, fmt.Errorf("eval: linear probe of %d features given %d", m.D, f.D)
	}
	out := make([]float32, f.N*m.Classes)
	x := make([]float32, m.D)
	for i := range f.N {
		m.standardize(f.Row(i), x)
		m.logits(x, out[i*m.Classes:(i+1)*m.Classes])
	}
	return out, nil
}

func (m *LinearModel) standardize(row, x []float32) {
	for j, v := range row {
		x[j] = (v - m.Mean[j]) / m.Std[j]
	}
}

func (m *LinearModel) logits(x, out []float32) {
	for c := range m.Classes {
		w := m.W[c*m.D : (c+1)*m.D]
		s := m.B[c]
		for j, v := range x {
			s += w[j] * v
		}
		out[c] = s
	}
}

// TrainLinear fits a linear probe on train.
func TrainLinear(train *Features, classes int, cfg LinearConfig) (*LinearModel, error) {
	if err := train.check("linear probe train"); err != nil {
		return nil, err
	}
	if cfg.Epochs < 1 || cfg.Batch < 1 || !(cfg.LR > 0) || !(cfg.Momentum >= 0 && cfg.Momentum < 1) || !(cfg.WeightDecay >= 0) {
		return nil, fmt.Errorf("eval: linear probe config %+v: need epochs, batch and lr > 0, momentum in [0, 1), weight decay >= 0", cfg)
	}
	if c := numClasses(train.Labels); c > classes {
		return nil, fmt.Errorf("eval: linear probe train label %d with %d classes", c-1, classes)
	}
	d := train.D
	m := &LinearModel{D: d, Classes: classes, Mean: make([]float32, d), Std: make([]float32, d),
		W: make([]float32, classes*d), B: make([]float32, classes)}
	// Standardisation statistics in float64: feature sums over 60k rows
	// lose digits in float32.
	mean, sq := make([]float64, d), make([]float64, d)
	for i := range train.N {
		for j, v := range train.Row(i) {
			mean[j] += float64(v)
			sq[j] += float64(v) * float64(v)
		}
	}
	n := float64(train.N)
	for j := range d {
		mu := mean[j] / n
		v := sq[j]/n - mu*mu
		m.Mean[j] = float32(mu)
		// Constant features (dead ReLU channels) stay at 0 instead of
		// blowing up.
		m.Std[j] = float32(math.Sqrt(math.Max(v, 0)) + 1e-6)
	}
	x := make([]float32, train.N*d)
	for i := range train.N {
		m.standardize(train.Row(i), x[i*d:(i+1)*d])
	}

	gw, gb := make([]float32, len(m.W)), make([]float32, len(m.B))
	vw, vb := make([]float32, len(m.W)), make([]float32, len(m.B))
	p := make([]float32, classes)
	order := make([]int, train.N)
	for i := range order {
		order[i] = i
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x4c494e454152))
	steps := cfg.Epochs * ((train.N + cfg.Batch - 1) / cfg.Batch)
	step := 0
	for range cfg.Epochs {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for lo := 0; lo < train.N; lo += cfg.Batch {
			hi := min(lo+cfg.Batch, train.N)
			clear(gw)
			clear(gb)
			for _, i := range order[lo:hi] {
				xi := x[i*d : (i+1)*d]
				m.logits(xi, p)
				softmaxInPlace(p)
				p[train.Labels[i]]--
				for c, g := range p {
					gb[c] += g
					w := gw[c*d : (c+1)*d]
					for j, v := range xi {
						w[j] += g * v
					}
				}
			}
			lr := float32(nn.WarmupCosine(step, 0, steps, cfg.LR, 0))
			inv := 1 / float32(hi-lo)
			mom, wd := float32(cfg.Momentum), float32(cfg.WeightDecay)
			for j, g := range gw {
				g = g*inv + wd*m.W[j]
				vw[j] = mom*vw[j] + g
				m.W[j] -= lr * vw[j]
			}
			for c, g := range gb {
				vb[c] = mom*vb[c] + g*inv
				m.B[c] -= lr * vb[c]
			}
			step++
		}
	}
	for _, v := range m.W {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("eval: linear probe diverged (learning rate %g too high?)", cfg.LR)
		}
	}
	return m, nil
}

// softmaxInPlace turns logits into probabilities.
func softmaxInPlace(p []float32) {
	mx := p[0]
	for _, v := range p[1:] {
		mx = max(mx, v)
	}
	var s float32
	for c, v := range p {
		p[c] = float32(math.Exp(float64(v - mx)))
		s += p[c]
	}
	for c := range p {
		p[c] /= s
	}
}

// Linear trains a probe on train and reports its accuracy on test.
func Linear(train, test *Features, cfg LinearConfig) (Result, error) {
	if err := test.check("linear probe test"); err != nil {
		return Result{}, err
	}
	if train != nil && test.D != train.D {
		return Result{}, fmt.Errorf("eval: linear probe train has %d features per sample, test %d", train.D, test.D)
	}
	classes := cfg.Classes
	if classes == 0 && train != nil {
		classes = numClasses(train.Labels, test.Labels)
	}
	m, err := TrainLinear(train, classes, cfg)
	if err != nil {
		return Result{}, err
	}
	scores, err := m.Scores(test)
	if err != nil {
		return Result{}, err
	}
	return TopK(scores, classes, test.Labels)
}
