package mlm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/data/text"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/zoo"
)

// TrainConfig describes a masked-language-model run.
type TrainConfig struct {
	// Model is the BERT to train; VocabSize and PadTokenID are taken from
	// the tokenizer, the MLM head is always built.
	Model zoo.BERTConfig
	// SeqLen is the packed sequence length, [CLS] and [SEP] included
	// (at most Model.MaxPositions); Batch the sequences per step.
	SeqLen, Batch int
	// Epochs over the training sequences; MaxSteps, when positive, stops
	// earlier and sets the schedule's length.
	Epochs, MaxSteps int
	// Recipe overrides DefaultConfig for the run's length when non-nil;
	// LR, when positive, replaces just the learning rate.
	Recipe *Config
	LR     float64
	// HeldOut is the fraction of sequences kept for evaluation (every
	// 1/HeldOut-th one); 0 means 0.05, negative means none.
	HeldOut float64
	// WholeWord masks whole words (all pieces of a selected word).
	WholeWord bool
	// SplitLong cuts sentences longer than SeqLen-2 tokens into several
	// sequences instead of truncating them.
	SplitLong bool
	// EvalEvery evaluates every this many steps (0: at the end of each
	// epoch).
	EvalEvery int
	Seed      uint64
	// OutDir receives the trained model as a Hugging Face BERT folder
	// (LoadHFBERT reads it), checkpoint.safetensors for resuming, and
	// sequences.safetensors (SequencesName: the packed sequences and the
	// recipe, written before the first step).
	OutDir string
	// Resume continues from OutDir's checkpoint when it exists.
	Resume bool
}

// Progress is reported after every step, and with Eval set after each
// evaluation.
type Progress struct {
	Step, TotalSteps, Epoch int
	Result                  StepResult
	Eval                    *EvalResult
	// Warning is a one-off message (truncated sentences, resumed run).
	Warning string
}

// Result summarises a run.
type Result struct {
	Steps                  int
	Pack                   text.PackStats
	TrainSeqs, HeldOutSeqs int
	// Initial and Final are the held-out scores before the first and after
	// the last step; Unigram is the baseline that always predicts from the
	// training tokens' frequencies, on the same masked positions.
	Initial, Final, Unigram EvalResult
	OutDir                  string
	// TrainSeconds is the time spent in this call's steps (batching,
	// masking, forward, backward, update; evaluations and saving
	// excluded), and TrainSequences the sequences those steps consumed.
	TrainSeconds   float64
	TrainSequences int
}

const checkpointName = "checkpoint.safetensors"

// Train packs docs with tok, trains a BERT with masked language modelling
// and writes it to cfg.OutDir. Sentences longer than the sequence are
// truncated (reported once through progress as a warning) unless
// SplitLong. Cancelling ctx stops after the current step, saves a
// checkpoint and returns ctx's error.
func Train(ctx context.Context, cfg TrainConfig, tok *text.Tokenizer, docs []text.Document, progress func(Progress)) (*Result, error) {
	if progress == nil {
		progress = func(Progress) {}
	}
	if tok == nil {
		return nil, fmt.Errorf("mlm train: no tokenizer")
	}
	mc := cfg.Model
	mc.VocabSize, mc.PadTokenID, mc.MLMHead = tok.Vocab().Size(), tok.Specials().PAD, true
	if mc.MaxPositions == 0 {
		mc.MaxPositions = 512
	}
	switch {
	case cfg.SeqLen < 3 || cfg.SeqLen > mc.MaxPositions:
		return nil, fmt.Errorf("mlm train: sequence length %d outside [3, %d] (the model's position table)", cfg.SeqLen, mc.MaxPositions)
	case cfg.Batch < 1:
		return nil, fmt.Errorf("mlm train: batch %d", cfg.Batch)
	case cfg.Epochs < 1 && cfg.MaxSteps < 1:
		return nil, fmt.Errorf("mlm train: %d epochs and %d steps: nothing to do", cfg.Epochs, cfg.MaxSteps)
	case cfg.OutDir == "":
		return nil, fmt.Errorf("mlm train: no output folder")
	}
	seqs, st, err := text.Pack(tok, docs, text.PackConfig{SeqLen: cfg.SeqLen, SplitLong: cfg.SplitLong})
	if err != nil {
		return nil, fmt.Errorf("mlm train: %w", err)
	}
	res := &Result{Pack: st, OutDir: cfg.OutDir}
	if st.Truncated > 0 {
		progress(Progress{Warning: fmt.Sprintf("%d sentences longer than %d tokens were truncated (%d tokens dropped); SplitLong keeps them",
			st.Truncated, cfg.SeqLen-2, st.DroppedTokens)})
	}
	train, held, heldEvery := splitHeldOut(seqs, cfg.HeldOut)
	if len(train) == 0 {
		return nil, fmt.Errorf("mlm train: no training sequences left after holding out %d", len(held))
	}
	res.TrainSeqs, res.HeldOutSeqs = len(train), len(held)
	perEpoch := (len(train) + cfg.Batch - 1) / cfg.Batch
	total := cfg.Epochs * perEpoch
	if cfg.MaxSteps > 0 && (total == 0 || cfg.MaxSteps < total) {
		total = cfg.MaxSteps
	}
	recipe := DefaultConfig(total)
	if cfg.Recipe != nil {
		recipe = *cfg.Recipe
	}
	if cfg.LR > 0 {
		recipe.LR = cfg.LR
	}
	if cfg.WholeWord {
		recipe.Mask.WholeWord = true
	}
	model, err := zoo.NewBERT(mc, rand.New(rand.NewPCG(cfg.Seed, 1)))
	if err != nil {
		return nil, fmt.Errorf("mlm train: %w", err)
	}
	tr, err := NewTrainer(recipe, model, tok, nil)
	if err != nil {
		return nil, fmt.Errorf("mlm train: %w", err)
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("mlm train: %w", err)
	}
	// The sequences and the recipe, for a twin implementation and for
	// `sslzoo eval mlm`; the evaluation's batch and seed come from here.
	run := newRunRecipe(cfg, tr.Config, tok, total, perEpoch, heldEvery)
	if err := WriteSequences(filepath.Join(cfg.OutDir, SequencesName), &Sequences{Recipe: run, Train: train, HeldOut: held}); err != nil {
		return nil, fmt.Errorf("mlm train: %w", err)
	}
	ckpt := filepath.Join(cfg.OutDir, checkpointName)
	meta, _ := json.Marshal(struct {
		Model  zoo.BERTConfig
		Recipe Config
		SeqLen int
		Batch  int
		Seed   uint64
	}{mc, recipe, cfg.SeqLen, cfg.Batch, cfg.Seed})
	// The checkpoint reserves the "sslzoo." prefix for itself; the exported
	// model's header carries the same facts under it.
	metadata := map[string]string{"method": "mlm", "config": string(meta), "tokenizer": tok.Metadata()}
	if cfg.Resume {
		step, _, err := nn.LoadCheckpoint(ckpt, tr, tr.opt, nil)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("mlm train: resume: %w", err)
		default:
			progress(Progress{Warning: fmt.Sprintf("resumed from %s at step %d", ckpt, step)})
		}
	}
	evaluate := func() (EvalResult, error) {
		if len(held) == 0 {
			return EvalResult{}, nil
		}
		return Evaluate(model, tok, run.MaskConfig(), held, run.EvalBatch, run.EvalSeed)
	}
	if len(held) > 0 {
		if res.Unigram, err = UnigramBaseline(tok, run.MaskConfig(), train, held, run.EvalBatch, run.EvalSeed); err != nil {
			return nil, fmt.Errorf("mlm train: %w", err)
		}
		if res.Initial, err = evaluate(); err != nil {
			return nil, fmt.Errorf("mlm train: %w", err)
		}
	}
	save := func() error {
		if err := nn.SaveCheckpoint(ckpt, tr, tr.opt, tr.Steps(), nil, metadata); err != nil {
			return fmt.Errorf("mlm train: %w", err)
		}
		return nil
	}
	tp := autograd.NewTape()
	order := make([]int, len(train))
	batch := make([]text.Sequence, 0, cfg.Batch)
	for step := int(tr.Steps()); step < total; step++ {
		if err := ctx.Err(); err != nil {
			if serr := save(); serr != nil {
				return res, errors.Join(err, serr)
			}
			return res, err
		}
		epoch, within := step/perEpoch, step%perEpoch
		if within == 0 || step == int(tr.Steps()) {
			// The epoch's order depends on (seed, epoch) only, so a resumed
			// run sees the same batches.
			for i := range order {
				order[i] = i
			}
			rand.New(rand.NewPCG(cfg.Seed, uint64(epoch)+1000)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		}
		t0 := time.Now()
		batch = batch[:0]
		for _, i := range order[within*cfg.Batch : min((within+1)*cfg.Batch, len(order))] {
			batch = append(batch, train[i])
		}
		b, err := tok.PadSequences(batch, 0)
		if err != nil {
			return res, fmt.Errorf("mlm train: %w", err)
		}
		m, err := tr.Mask(b, rand.New(rand.NewPCG(cfg.Seed, uint64(step))))
		if err != nil {
			return res, fmt.Errorf("mlm train step %d: %w", step, err)
		}
		r, err := tr.StepMasked(tp, m)
		if err != nil {
			return res, err
		}
		res.TrainSeconds += time.Since(t0).Seconds()
		res.TrainSequences += len(batch)
		p := Progress{Step: step + 1, TotalSteps: total, Epoch: epoch, Result: r}
		last := step+1 == total
		if len(held) > 0 && (last || cfg.EvalEvery > 0 && (step+1)%cfg.EvalEvery == 0 || cfg.EvalEvery <= 0 && within == perEpoch-1) {
			ev, err := evaluate()
			if err != nil {
				return res, fmt.Errorf("mlm train: %w", err)
			}
			p.Eval = &ev
			res.Final = ev
		}
		progress(p)
	}
	res.Steps = int(tr.Steps())
	if err := save(); err != nil {
		return res, err
	}
	export := map[string]string{"sslzoo.steps": strconv.FormatInt(tr.Steps(), 10)}
	for k, v := range metadata {
		export["sslzoo."+k] = v
	}
	if err := zoo.SaveHFBERT(cfg.OutDir, model, tok, export); err != nil {
		return res, fmt.Errorf("mlm train: %w", err)
	}
	return res, nil
}

// splitHeldOut keeps every k-th sequence (k = round(1/frac)) for
// evaluation, and returns k (0 when nothing is held out).
func splitHeldOut(seqs []text.Sequence, frac float64) (train, held []text.Sequence, k int) {
	if frac == 0 {
		frac = 0.05
	}
	if frac < 0 || len(seqs) < 2 {
		return seqs, nil, 0
	}
	k = max(2, int(math.Round(1/frac)))
	for i, s := range seqs {
		if i%k == k-1 {
			held = append(held, s)
		} else {
			train = append(train, s)
		}
	}
	return train, held, k
}

// UnigramBaseline scores the predictor that ignores context: every masked
// token gets the training tokens' frequency distribution (add-one
// smoothed, specials excluded) and the most frequent token as its guess.
// With the same mcfg, batch and seed as Evaluate it scores the same
// positions.
func UnigramBaseline(tok *text.Tokenizer, mcfg text.MaskConfig, train, held []text.Sequence, batch int, seed uint64) (EvalResult, error) {
	var r EvalResult
	v := tok.Vocab().Size()
	counts := make([]float64, v)
	var n float64
	for _, s := range train {
		for _, id := range s.IDs {
			if !tok.IsSpecial(id) {
				counts[id]++
				n++
			}
		}
	}
	normal := 0
	for id := range v {
		if !tok.IsSpecial(id) {
			normal++
		}
	}
	best := 0
	for id, c := range counts {
		if c > counts[best] {
			best = id
		}
	}
	masker, err := text.NewMasker(tok, mcfg)
	if err != nil {
		return r, fmt.Errorf("unigram baseline: %w", err)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var total float64
	for lo := 0; lo < len(held); lo += batch {
		b, err := tok.PadSequences(held[lo:min(lo+batch, len(held))], 0)
		if err != nil {
			return r, fmt.Errorf("unigram baseline: %w", err)
		}
		m, err := maskBatch(masker, b, rng)
		if err != nil {
			continue
		}
		for _, y := range m.Labels {
			if y == text.IgnoreLabel {
				continue
			}
			p := (counts[y] + 1) / (n + float64(normal))
			if tok.IsSpecial(y) {
				p = 1 / (n + float64(normal))
			}
			total -= math.Log(p)
			r.Masked++
			if y == best {
				r.Accuracy++
			}
		}
	}
	if r.Masked == 0 {
		return r, fmt.Errorf("unigram baseline: no maskable token")
	}
	r.Loss = total / float64(r.Masked)
	r.Accuracy /= float64(r.Masked)
	return r, nil
}
