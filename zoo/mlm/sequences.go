package mlm

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sslzoo/sslzoo/data/text"
	"github.com/sslzoo/sslzoo/weights"
	"github.com/sslzoo/sslzoo/zoo"
)

// SequencesName is the file Train writes into its output folder: the
// packed training and held-out sequences and the run's recipe, so that
// another implementation (scripts/mlm_torch.py) trains on exactly the same
// data with the same recipe, and `sslzoo eval mlm` scores any model on
// exactly the trainer's held-out masks.
//
// Layout (safetensors): for each split S in "train" and "held_out",
//
//	S.input_ids  I32 [N, seq_len]  token ids, [CLS] ... [SEP], then pad_id
//	S.lengths    I32 [N]           tokens before the padding
//	S.doc        I32 [N]           index of the source document (corpus order)
//
// and the metadata key "recipe" holds RunRecipe as JSON.
const SequencesName = "sequences.safetensors"

// SequencesFormat names the layout above; readers refuse other versions.
const SequencesFormat = "sslzoo-mlm-sequences/1"

// RunRecipe is everything about a run that a twin implementation needs
// besides the model's config.json and vocab.txt, in snake_case for
// Python. The policies it does not spell out as numbers:
//   - learning rate at step s (from 0): lr*s/warmup_steps during the
//     warmup, then a half-cosine from lr to final_lr reaching it at
//     total_steps (nn.WarmupCosine);
//   - AdamW (PyTorch's, decoupled decay) with weight_decay on every
//     parameter except biases and LayerNorm weights (names ending in
//     ".bias" or "LayerNorm.weight"), the gradient's global L2 norm
//     clipped to clip_norm (0: off) before each update;
//   - order: each epoch draws a fresh permutation of the training
//     sequences; step s of the epoch takes perm[s*batch : (s+1)*batch]
//     (the last batch of an epoch is short), padded to its longest;
//   - masking, per batch: every non-special token (a whole word with
//     mask.whole_word: a token and the "##" pieces after it) is selected
//     with mask.prob; each selected token becomes [MASK] with
//     mask.mask_frac, a uniformly drawn non-special token with
//     mask.random_frac, or stays; special_ids are never selected; the
//     loss is the mean cross-entropy over the selected tokens.
type RunRecipe struct {
	Format        string   `json:"format"`
	SeqLen        int      `json:"seq_len"`
	Batch         int      `json:"batch"`
	TotalSteps    int      `json:"total_steps"`
	StepsPerEpoch int      `json:"steps_per_epoch"`
	Seed          uint64   `json:"seed"`
	LR            float64  `json:"lr"`
	FinalLR       float64  `json:"final_lr"`
	WarmupSteps   int      `json:"warmup_steps"`
	WeightDecay   float64  `json:"weight_decay"`
	Beta1         float64  `json:"beta1"`
	Beta2         float64  `json:"beta2"`
	Eps           float64  `json:"eps"`
	ClipNorm      float64  `json:"clip_norm"`
	Mask          maskJSON `json:"mask"`
	// HeldOutEvery: sequence i of the packed corpus is held out when
	// i % k == k-1 (0: nothing held out).
	HeldOutEvery int `json:"held_out_every"`
	// EvalBatch and EvalSeed fix Evaluate's batches and masks.
	EvalBatch   int    `json:"eval_batch"`
	EvalSeed    uint64 `json:"eval_seed"`
	VocabSHA256 string `json:"vocab_sha256"`
	VocabSize   int    `json:"vocab_size"`
	SpecialIDs  []int  `json:"special_ids"`
	PadID       int    `json:"pad_id"`
	MaskID      int    `json:"mask_id"`
}

type maskJSON struct {
	Prob       float64 `json:"prob"`
	MaskFrac   float64 `json:"mask_frac"`
	RandomFrac float64 `json:"random_frac"`
	WholeWord  bool    `json:"whole_word"`
}

// MaskConfig is the recipe's masking as text.MaskConfig.
func (r RunRecipe) MaskConfig() text.MaskConfig {
	return text.MaskConfig{Prob: r.Mask.Prob, MaskFrac: r.Mask.MaskFrac, RandomFrac: r.Mask.RandomFrac, WholeWord: r.Mask.WholeWord}
}

// newRunRecipe records a run's recipe (the evaluation's batch and seed
// included, which Train takes from here).
func newRunRecipe(cfg TrainConfig, c Config, tok *text.Tokenizer, total, perEpoch, heldEvery int) RunRecipe {
	sp := tok.Specials()
	var specials []int
	for id := range tok.Vocab().Size() {
		if tok.IsSpecial(id) {
			specials = append(specials, id)
		}
	}
	return RunRecipe{Format: SequencesFormat, SeqLen: cfg.SeqLen, Batch: cfg.Batch, TotalSteps: total, StepsPerEpoch: perEpoch,
		Seed: cfg.Seed, LR: c.LR, FinalLR: c.FinalLR, WarmupSteps: c.WarmupSteps, WeightDecay: c.WeightDecay,
		Beta1: c.Beta1, Beta2: c.Beta2, Eps: c.Eps, ClipNorm: c.ClipNorm,
		Mask:         maskJSON{Prob: c.Mask.Prob, MaskFrac: c.Mask.MaskFrac, RandomFrac: c.Mask.RandomFrac, WholeWord: c.Mask.WholeWord},
		HeldOutEvery: heldEvery, EvalBatch: max(cfg.Batch, 8), EvalSeed: cfg.Seed + 7,
		VocabSHA256: tok.Vocab().SHA256(), VocabSize: tok.Vocab().Size(), SpecialIDs: specials, PadID: sp.PAD, MaskID: sp.MASK}
}

// Sequences is the content of a sequences file.
type Sequences struct {
	Recipe         RunRecipe
	Train, HeldOut []text.Sequence
}

// WriteSequences stores s at path (atomically), padding every sequence to
// Recipe.SeqLen with Recipe.PadID.
func WriteSequences(path string, s *Sequences) error {
	raw, err := json.Marshal(s.Recipe)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	ts := map[string]*weights.Tensor{}
	for _, split := range []struct {
		name string
		seqs []text.Sequence
	}{{"train", s.Train}, {"held_out", s.HeldOut}} {
		n, w := len(split.seqs), s.Recipe.SeqLen
		ids := &weights.Tensor{DType: weights.I32, Shape: []int{n, w}, Data: make([]byte, 4*n*w)}
		lens := &weights.Tensor{DType: weights.I32, Shape: []int{n}, Data: make([]byte, 4*n)}
		docs := &weights.Tensor{DType: weights.I32, Shape: []int{n}, Data: make([]byte, 4*n)}
		for i, q := range split.seqs {
			if len(q.IDs) > w {
				return fmt.Errorf("write %s: %s sequence %d has %d tokens, more than seq_len %d", path, split.name, i, len(q.IDs), w)
			}
			for j := range w {
				id := s.Recipe.PadID
				if j < len(q.IDs) {
					id = q.IDs[j]
				}
				binary.LittleEndian.PutUint32(ids.Data[4*(i*w+j):], uint32(int32(id)))
			}
			binary.LittleEndian.PutUint32(lens.Data[4*i:], uint32(len(q.IDs)))
			binary.LittleEndian.PutUint32(docs.Data[4*i:], uint32(int32(q.Doc)))
		}
		ts[split.name+".input_ids"], ts[split.name+".lengths"], ts[split.name+".doc"] = ids, lens, docs
	}
	if err := weights.Write(path, ts, map[string]string{"recipe": string(raw)}); err != nil {
		return fmt.Errorf("mlm: %w", err)
	}
	return nil
}

// ReadSequences reads a sequences file, or the one inside a folder that
// `sslzoo train mlm` wrote.
func ReadSequences(path string) (*Sequences, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, SequencesName)
	}
	f, err := weights.Read(path)
	if err != nil {
		return nil, fmt.Errorf("mlm sequences: %w", err)
	}
	s := &Sequences{}
	raw, ok := f.Metadata["recipe"]
	if !ok {
		return nil, fmt.Errorf("mlm sequences %s: no \"recipe\" metadata; not written by sslzoo train mlm", path)
	}
	if err := json.Unmarshal([]byte(raw), &s.Recipe); err != nil {
		return nil, fmt.Errorf("mlm sequences %s: recipe: %w", path, err)
	}
	if s.Recipe.Format != SequencesFormat {
		return nil, fmt.Errorf("mlm sequences %s: format %q, this sslzoo reads %q", path, s.Recipe.Format, SequencesFormat)
	}
	read := func(split string) ([]text.Sequence, error) {
		get := func(name string, rank int) ([]int64, []int, error) {
			t, ok := f.Tensors[split+"."+name]
			if !ok || len(t.Shape) != rank {
				return nil, nil, fmt.Errorf("mlm sequences %s: missing or malformed tensor %s.%s (want rank %d)", path, split, name, rank)
			}
			v, err := t.Int64()
			if err != nil {
				return nil, nil, fmt.Errorf("mlm sequences %s: %s.%s: %w", path, split, name, err)
			}
			return v, t.Shape, nil
		}
		ids, shape, err := get("input_ids", 2)
		if err != nil {
			return nil, err
		}
		lens, lshape, err := get("lengths", 1)
		if err != nil {
			return nil, err
		}
		docs, dshape, err := get("doc", 1)
		if err != nil {
			return nil, err
		}
		n, w := shape[0], shape[1]
		if lshape[0] != n || dshape[0] != n || w != s.Recipe.SeqLen {
			return nil, fmt.Errorf("mlm sequences %s: %s shapes %v, %v, %v disagree (seq_len %d)", path, split, shape, lshape, dshape, s.Recipe.SeqLen)
		}
		out := make([]text.Sequence, n)
		for i := range n {
			l := int(lens[i])
			if l < 1 || l > w {
				return nil, fmt.Errorf("mlm sequences %s: %s sequence %d has length %d outside [1, %d]", path, split, i, l, w)
			}
			q := text.Sequence{IDs: make([]int, l), Doc: int(docs[i])}
			for j := range l {
				id := int(ids[i*w+j])
				if id < 0 || id >= s.Recipe.VocabSize {
					return nil, fmt.Errorf("mlm sequences %s: %s sequence %d: token id %d outside the vocabulary of %d", path, split, i, id, s.Recipe.VocabSize)
				}
				q.IDs[j] = id
			}
			out[i] = q
		}
		return out, nil
	}
	if s.Train, err = read("train"); err != nil {
		return nil, err
	}
	if s.HeldOut, err = read("held_out"); err != nil {
		return nil, err
	}
	return s, nil
}

// RunScores is a model's held-out quality on a run's sequences.
type RunScores struct {
	Model, Unigram EvalResult
	HeldOut        int // held-out sequences
}

// EvaluateRun scores model on s's held-out sequences with the masks the
// trainer's own evaluations drew (same batches, same seed), and the
// unigram baseline of s's training sequences on the same positions. tok
// must have the run's vocabulary; model needs the MLM head.
func EvaluateRun(model *zoo.BERT, tok *text.Tokenizer, s *Sequences) (RunScores, error) {
	r := RunScores{HeldOut: len(s.HeldOut)}
	switch {
	case model == nil || model.MLM == nil:
		return r, fmt.Errorf("mlm evaluate: the model has no MLM head (cls.predictions); a BertForMaskedLM checkpoint is needed")
	case tok.Vocab().SHA256() != s.Recipe.VocabSHA256:
		return r, fmt.Errorf("mlm evaluate: the model's vocabulary (sha256 %.12s) is not the run's (%.12s); token ids would not match",
			tok.Vocab().SHA256(), s.Recipe.VocabSHA256)
	case model.Config.VocabSize != s.Recipe.VocabSize:
		return r, fmt.Errorf("mlm evaluate: the model has %d embeddings but the run's vocabulary %d tokens", model.Config.VocabSize, s.Recipe.VocabSize)
	case len(s.HeldOut) == 0:
		return r, fmt.Errorf("mlm evaluate: the run held out no sequences (trained with --held-out 0)")
	}
	var err error
	mc := s.Recipe.MaskConfig()
	if r.Model, err = Evaluate(model, tok, mc, s.HeldOut, s.Recipe.EvalBatch, s.Recipe.EvalSeed); err != nil {
		return r, err
	}
	if r.Unigram, err = UnigramBaseline(tok, mc, s.Train, s.HeldOut, s.Recipe.EvalBatch, s.Recipe.EvalSeed); err != nil {
		return r, err
	}
	return r, nil
}
