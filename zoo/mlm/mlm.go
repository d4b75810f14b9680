// Package mlm trains BERT with masked language modelling: sequences packed
// from a text corpus, BERT's 15% / 80-10-10 masking, the cross-entropy of
// the tied-embedding MLM head on the masked positions only, AdamW with
// warmup and a cosine decay, and held-out masked-token accuracy and
// perplexity.
package mlm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/data/text"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/zoo"
	"github.com/sslzoo/sslzoo/zoo/ssl"
)

// Config is the optimisation recipe.
type Config struct {
	// LR is the peak learning rate, reached linearly over WarmupSteps, then
	// decayed on a half-cosine to FinalLR at TotalSteps (0: constant).
	LR, FinalLR             float64
	WarmupSteps, TotalSteps int
	// WeightDecay applies to every parameter except biases and LayerNorm
	// weights, as in BERT and Hugging Face's Trainer.
	WeightDecay float64
	// Beta1, Beta2 and Eps are AdamW's (0 means 0.9, 0.999 and 1e-8).
	Beta1, Beta2, Eps float64
	// ClipNorm bounds the global gradient norm (Hugging Face's default
	// 1.0); 0 turns clipping off.
	ClipNorm float64
	// Mask is the masking recipe (text.DefaultMaskConfig).
	Mask text.MaskConfig
}

// DefaultConfig is BERT's recipe (AdamW, weight decay 0.01, betas 0.9 and
// 0.999, 15% masking with 80/10/10, gradient clipping at 1) for a run of
// totalSteps, with a warmup over the first 10% of the run. The learning rate
// is 5e-4, not the paper's 1e-4: the paper's rate is for BERT-base over a
// million steps, and the small BERTs sslzoo trains in short runs on one
// machine learn faster at the higher rate (Google's 24 small BERTs were
// pre-trained with rates up to 5e-4 too).
func DefaultConfig(totalSteps int) Config {
	return Config{LR: 5e-4, WarmupSteps: totalSteps / 10, TotalSteps: totalSteps, WeightDecay: 0.01,
		Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, ClipNorm: 1, Mask: text.DefaultMaskConfig()}
}

// LRAt is the learning rate of step (from 0).
func (c Config) LRAt(step int64) float64 {
	if c.TotalSteps <= 0 {
		if step < int64(c.WarmupSteps) {
			return c.LR * float64(step) / float64(c.WarmupSteps)
		}
		return c.LR
	}
	return nn.WarmupCosine(int(min(step, int64(c.TotalSteps))), c.WarmupSteps, c.TotalSteps, c.LR, c.FinalLR)
}

func (c Config) validate() error {
	switch {
	case !(c.LR >= 0) || math.IsInf(c.LR, 0) || !(c.FinalLR >= 0) || math.IsInf(c.FinalLR, 0):
		return fmt.Errorf("learning rates %g -> %g must be finite and non-negative", c.LR, c.FinalLR)
	case c.WarmupSteps < 0 || c.TotalSteps < 0 || c.TotalSteps > 0 && c.WarmupSteps > c.TotalSteps:
		return fmt.Errorf("warmup %d and total %d steps", c.WarmupSteps, c.TotalSteps)
	case !(c.WeightDecay >= 0) || !(c.ClipNorm >= 0):
		return fmt.Errorf("weight decay %g and clip norm %g must be non-negative", c.WeightDecay, c.ClipNorm)
	case !(c.Beta1 >= 0 && c.Beta1 < 1) || !(c.Beta2 >= 0 && c.Beta2 < 1) || !(c.Eps >= 0):
		return fmt.Errorf("AdamW betas %g, %g and eps %g", c.Beta1, c.Beta2, c.Eps)
	}
	return nil
}

// Trainer trains a BERT with an MLM head. It is an nn.Module whose state is
// the model's (Hugging Face BertForMaskedLM names) plus the step counter
// "steps", so nn.SaveCheckpoint/LoadCheckpoint resume it.
type Trainer struct {
	Config    Config
	Model     *zoo.BERT
	Tokenizer *text.Tokenizer

	masker *text.Masker
	opt    *ssl.AdamWGroups
	params []nn.Param
	steps  int64
	rng    *rand.Rand
}

// NewTrainer prepares training of model (built with BERTConfig.MLMHead)
// with tok's vocabulary; rng draws the masks of Step (nil: a fixed seed).
func NewTrainer(cfg Config, model *zoo.BERT, tok *text.Tokenizer, rng *rand.Rand) (*Trainer, error) {
	if model == nil || model.MLM == nil {
		return nil, fmt.Errorf("mlm: the model needs the MLM head (zoo.BERTConfig.MLMHead)")
	}
	if v := tok.Vocab().Size(); v != model.Config.VocabSize {
		return nil, fmt.Errorf("mlm: tokenizer has %d tokens but the model's vocabulary is %d", v, model.Config.VocabSize)
	}
	if pad := tok.Specials().PAD; pad != model.Config.PadTokenID {
		return nil, fmt.Errorf("mlm: tokenizer's [PAD] is id %d but the model's pad token id is %d", pad, model.Config.PadTokenID)
	}
	if cfg.Beta1 == 0 {
		cfg.Beta1 = 0.9
	}
	if cfg.Beta2 == 0 {
		cfg.Beta2 = 0.999
	}
	if cfg.Eps == 0 {
		cfg.Eps = 1e-8
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("mlm: %w", err)
	}
	masker, err := text.NewMasker(tok, cfg.Mask)
	if err != nil {
		return nil, fmt.Errorf("mlm: %w", err)
	}
	if rng == nil {
		rng = rand.New(rand.NewPCG(0, 0))
	}
	t := &Trainer{Config: cfg, Model: model, Tokenizer: tok, masker: masker, rng: rng}
	var decay, noDecay []nn.Param
	for _, p := range nn.StateOf(model).Params {
		t.params = append(t.params, p)
		if strings.HasSuffix(p.Name, ".bias") || strings.HasSuffix(p.Name, "LayerNorm.weight") {
			noDecay = append(noDecay, p)
		} else {
			decay = append(decay, p)
		}
	}
	t.opt = ssl.NewAdamWGroups(decay, noDecay, nn.AdamWConfig{LR: float32(cfg.LRAt(0)), Beta1: float32(cfg.Beta1),
		Beta2: float32(cfg.Beta2), Eps: float32(cfg.Eps), WeightDecay: float32(cfg.WeightDecay)})
	model.SetTraining(true)
	return t, nil
}

// CollectState implements nn.Module.
func (t *Trainer) CollectState(prefix string, s *nn.State) {
	t.Model.CollectState(prefix, s)
	s.Buffers = append(s.Buffers, nn.Buffer{Name: nn.Join(prefix, "steps"), Count: &t.steps})
}

// SetTraining implements nn.Module.
func (t *Trainer) SetTraining(on bool) { t.Model.SetTraining(on) }

// Optimizer is the AdamW optimizer (for checkpoints).
func (t *Trainer) Optimizer() nn.Optimizer { return t.opt }

// Steps is the number of completed steps.
func (t *Trainer) Steps() int64 { return t.steps }

// Masked is a masked batch: model inputs and labels (IgnoreLabel except at
// the selected positions, which hold the original ids).
type Masked struct {
	Input  zoo.BERTInput
	Labels []int
}

// Mask applies the masking recipe to a padded batch. A batch in which
// masking selected nothing (short sequences make that likely) is masked
// again, up to 20 times, because a loss over no positions is undefined.
func (t *Trainer) Mask(b *text.Batch, rng *rand.Rand) (Masked, error) {
	return maskBatch(t.masker, b, rng)
}

func maskBatch(masker *text.Masker, b *text.Batch, rng *rand.Rand) (Masked, error) {
	if b == nil || b.B < 1 || b.T < 1 || len(b.IDs) != b.B*b.T {
		return Masked{}, fmt.Errorf("mlm: malformed batch")
	}
	inputs, labels := make([]int, len(b.IDs)), make([]int, len(b.IDs))
	for range 20 {
		if err := masker.MaskInto(b.IDs, inputs, labels, rng); err != nil {
			return Masked{}, fmt.Errorf("mlm: %w", err)
		}
		for _, l := range labels {
			if l != text.IgnoreLabel {
				return Masked{Input: zoo.BERTInput{Batch: b.B, Seq: b.T, IDs: inputs, TokenTypes: b.TypeIDs, Mask: b.AttentionMask}, Labels: labels}, nil
			}
		}
	}
	return Masked{}, fmt.Errorf("mlm: masking selected no token in a batch of %d x %d (only special tokens or padding?)", b.B, b.T)
}

// Loss is the MLM loss of model on a masked batch: the mean cross-entropy
// of the MLM head's logits over the positions whose label is not
// IgnoreLabel (those of PyTorch's cross_entropy with ignore_index -100 over
// all positions; only the labelled positions go through the head, which
// saves a [B*T, vocab] logits matrix). It also returns the logits
// [masked, vocab] and the labels they belong to.
func Loss(tp *autograd.Tape, model *zoo.BERT, in zoo.BERTInput, labels []int) (loss, logits *autograd.Var, targets []int, err error) {
	if len(labels) != in.Batch*in.Seq {
		return nil, nil, nil, fmt.Errorf("mlm loss: %d labels for batch %d x %d", len(labels), in.Batch, in.Seq)
	}
	var pos []int
	for i, l := range labels {
		if l != text.IgnoreLabel {
			if l < 0 || l >= model.Config.VocabSize {
				return nil, nil, nil, fmt.Errorf("mlm loss: label %d at %d outside the vocabulary of %d", l, i, model.Config.VocabSize)
			}
			pos = append(pos, i)
			targets = append(targets, l)
		}
	}
	if len(pos) == 0 {
		return nil, nil, nil, fmt.Errorf("mlm loss: no labelled position")
	}
	err = autograd.Catch(func() {
		h := model.Forward(tp, in).Sequence
		flat := tp.Reshape(h, in.Batch*in.Seq, model.Config.Hidden)
		logits = model.MLMLogits(tp, tp.Gather(flat, 0, pos))
		loss = tp.CrossEntropy(logits, targets)
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("mlm loss: %w", err)
	}
	return loss, logits, targets, nil
}

// StepResult reports one training step.
type StepResult struct {
	Loss     float32
	GradNorm float64 // before clipping
	Masked   int     // positions in the loss
	Correct  int     // of which the argmax prediction was right
	LR       float64
}

// Step masks a padded batch and trains on it.
func (t *Trainer) Step(tp *autograd.Tape, b *text.Batch) (StepResult, error) {
	m, err := t.Mask(b, t.rng)
	if err != nil {
		return StepResult{}, err
	}
	return t.StepMasked(tp, m)
}

// StepMasked runs one iteration on an already masked batch: forward, loss,
// backward, gradient clipping and the AdamW update at this step's learning
// rate. A non-finite loss is an error and leaves the weights untouched. It
// resets tp when it returns.
func (t *Trainer) StepMasked(tp *autograd.Tape, m Masked) (res StepResult, err error) {
	defer tp.Reset()
	res.LR = t.Config.LRAt(t.steps)
	t.opt.SetLR(float32(res.LR))
	t.opt.ZeroGrad()
	loss, logits, targets, err := Loss(tp, t.Model, m.Input, m.Labels)
	if err != nil {
		return res, fmt.Errorf("mlm step %d: %w", t.steps, err)
	}
	res.Loss, res.Masked = loss.Value.Data[0], len(targets)
	res.Correct = correct(logits.Value, targets)
	if math.IsNaN(float64(res.Loss)) || math.IsInf(float64(res.Loss), 0) {
		return res, fmt.Errorf("mlm step %d: loss is %g; weights left as they were", t.steps, res.Loss)
	}
	if err := tp.Backward(loss); err != nil {
		return res, fmt.Errorf("mlm step %d: %w", t.steps, err)
	}
	if t.Config.ClipNorm > 0 {
		res.GradNorm = nn.ClipGradNorm(t.params, t.Config.ClipNorm)
	} else {
		res.GradNorm = nn.ClipGradNorm(t.params, math.Inf(1))
	}
	if math.IsNaN(res.GradNorm) || math.IsInf(res.GradNorm, 0) {
		return res, fmt.Errorf("mlm step %d: gradient norm is %g; weights left as they were", t.steps, res.GradNorm)
	}
	t.opt.Step()
	t.steps++
	return res, nil
}

// correct counts rows of logits [n, V] whose argmax is the target.
func correct(logits *tensor.Tensor, targets []int) int {
	v := logits.Shape[len(logits.Shape)-1]
	n := 0
	for i, y := range targets {
		row := logits.Data[i*v : (i+1)*v]
		best := 0
		for j, x := range row {
			if x > row[best] {
				best = j
			}
		}
		if best == y {
			n++
		}
	}
	return n
}

// EvalResult is masked-token prediction quality on held-out text.
type EvalResult struct {
	Masked   int     // masked positions scored
	Loss     float64 // mean cross-entropy (nats) over them
	Accuracy float64 // fraction predicted exactly (argmax)
}

// Perplexity is exp(Loss).
func (r EvalResult) Perplexity() float64 { return math.Exp(r.Loss) }

// Evaluate scores model (in evaluation mode, restored afterwards to
// training mode) on masked copies of the sequences, batch at a time. The
// masks come from a PCG seeded with seed, so repeated evaluations of
// different checkpoints score the same positions.
func Evaluate(model *zoo.BERT, tok *text.Tokenizer, mcfg text.MaskConfig, seqs []text.Sequence, batch int, seed uint64) (EvalResult, error) {
	var r EvalResult
	if len(seqs) == 0 || batch < 1 {
		return r, fmt.Errorf("mlm evaluate: %d sequences at batch %d", len(seqs), batch)
	}
	masker, err := text.NewMasker(tok, mcfg)
	if err != nil {
		return r, fmt.Errorf("mlm evaluate: %w", err)
	}
	model.SetTraining(false)
	defer model.SetTraining(true)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	tp := autograd.NewTape()
	var total float64
	for lo := 0; lo < len(seqs); lo += batch {
		b, err := tok.PadSequences(seqs[lo:min(lo+batch, len(seqs))], 0)
		if err != nil {
			return r, fmt.Errorf("mlm evaluate: %w", err)
		}
		m, err := maskBatch(masker, b, rng)
		if err != nil {
			continue // nothing maskable in this batch
		}
		tp.NoGrad(func() {
			var loss, logits *autograd.Var
			var targets []int
			loss, logits, targets, err = Loss(tp, model, m.Input, m.Labels)
			if err == nil {
				total += float64(loss.Value.Data[0]) * float64(len(targets))
				r.Masked += len(targets)
				r.Accuracy += float64(correct(logits.Value, targets))
			}
		})
		tp.Reset()
		if err != nil {
			return r, fmt.Errorf("mlm evaluate: %w", err)
		}
	}
	if r.Masked == 0 {
		return r, fmt.Errorf("mlm evaluate: no maskable token in %d sequences", len(seqs))
	}
	r.Loss = total / float64(r.Masked)
	r.Accuracy /= float64(r.Masked)
	return r, nil
}
