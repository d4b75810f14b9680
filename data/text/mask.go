package text

import (
	"fmt"
	"math/rand/v2"
)

// IgnoreLabel marks positions that carry no MLM target; it equals
// autograd.IgnoreIndex (PyTorch's ignore_index default), so labels from
// Masker feed autograd.CrossEntropy directly.
const IgnoreLabel = -100

// MaskConfig is BERT's masking recipe.
type MaskConfig struct {
	// Prob is the chance that a token (or, with WholeWord, a word) is
	// selected for prediction.
	Prob float64
	// MaskFrac of the selected tokens become [MASK], RandomFrac become a
	// random token, and the rest stay unchanged.
	MaskFrac, RandomFrac float64
	// WholeWord selects whole words: a word's pieces ("##" continuations
	// after its first piece) are selected together. The [MASK] / random /
	// unchanged choice is still made per token, as in Hugging Face's
	// DataCollatorForWholeWordMask.
	WholeWord bool
}

// DefaultMaskConfig is 15% selected; 80% [MASK], 10% random, 10% unchanged.
func DefaultMaskConfig() MaskConfig {
	return MaskConfig{Prob: 0.15, MaskFrac: 0.8, RandomFrac: 0.1}
}

// Masker applies MLM masking for one vocabulary. It holds no random state:
// callers pass a *rand.Rand, so a seeded run is reproducible.
type Masker struct {
	cfg     MaskConfig
	maskID  int
	special []bool
	cont    []bool
	// random replacements are drawn from the non-special tokens (Hugging
	// Face draws from the whole vocabulary, special tokens included; BERT's
	// original code from its word list, which holds them too).
	randomIDs []int
}

// NewMasker validates cfg against the tokenizer's vocabulary.
func NewMasker(tok *Tokenizer, cfg MaskConfig) (*Masker, error) {
	if cfg.Prob < 0 || cfg.Prob > 1 {
		return nil, fmt.Errorf("mask: Prob %g outside [0, 1]", cfg.Prob)
	}
	if cfg.MaskFrac < 0 || cfg.RandomFrac < 0 || cfg.MaskFrac+cfg.RandomFrac > 1+1e-12 {
		return nil, fmt.Errorf("mask: MaskFrac %g and RandomFrac %g must be non-negative with sum at most 1", cfg.MaskFrac, cfg.RandomFrac)
	}
	v := tok.Vocab()
	m := &Masker{cfg: cfg, maskID: tok.Specials().MASK, special: make([]bool, v.Size()), cont: make([]bool, v.Size())}
	for id := range v.Size() {
		m.special[id] = tok.IsSpecial(id)
		m.cont[id] = v.IsContinuation(id)
		if !m.special[id] {
			m.randomIDs = append(m.randomIDs, id)
		}
	}
	if cfg.RandomFrac > 0 && len(m.randomIDs) == 0 {
		return nil, fmt.Errorf("mask: vocabulary has no ordinary tokens to draw random replacements from")
	}
	return m, nil
}

// Mask returns the model inputs and the labels for ids (one sequence, or a
// flattened batch of sequences that each start with a special token). Special
// tokens, padding included, are never selected; labels hold the original id
// at selected positions and IgnoreLabel elsewhere. An id outside the
// vocabulary is an error.
func (m *Masker) Mask(ids []int, rng *rand.Rand) (inputs, labels []int, err error) {
	inputs = make([]int, len(ids))
	labels = make([]int, len(ids))
	err = m.MaskInto(ids, inputs, labels, rng)
	return inputs, labels, err
}

// MaskInto is Mask writing into caller-owned slices of len(ids).
func (m *Masker) MaskInto(ids, inputs, labels []int, rng *rand.Rand) error {
	if len(inputs) != len(ids) || len(labels) != len(ids) {
		return fmt.Errorf("mask: inputs (%d) and labels (%d) must have len(ids) = %d", len(inputs), len(labels), len(ids))
	}
	for i, id := range ids {
		if id < 0 || id >= len(m.special) {
			return fmt.Errorf("mask: id %d at position %d outside the vocabulary of %d", id, i, len(m.special))
		}
	}
	copy(inputs, ids)
	for i := range labels {
		labels[i] = IgnoreLabel
	}
	for i := 0; i < len(ids); {
		if m.special[ids[i]] {
			i++
			continue
		}
		end := i + 1
		if m.cfg.WholeWord {
			for end < len(ids) && !m.special[ids[end]] && m.cont[ids[end]] {
				end++
			}
		}
		if rng.Float64() < m.cfg.Prob {
			for j := i; j < end; j++ {
				labels[j] = ids[j]
				switch u := rng.Float64(); {
				case u < m.cfg.MaskFrac:
					inputs[j] = m.maskID
				case u < m.cfg.MaskFrac+m.cfg.RandomFrac:
					inputs[j] = m.randomIDs[rng.IntN(len(m.randomIDs))]
				}
			}
		}
		i = end
	}
	return nil
}
