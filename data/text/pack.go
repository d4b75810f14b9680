package text

import (
	"fmt"
)

// PackConfig sets up sentence packing.
type PackConfig struct {
	// SeqLen is the longest sequence, [CLS] and [SEP] included (the
	// trainer's --seq-len). It must be at least 3 and at most the
	// tokenizer's MaxLen.
	SeqLen int
	// SplitLong cuts a sentence longer than SeqLen-2 tokens into several
	// sequences. By default such a sentence is truncated, and
	// PackStats.Truncated counts it so the caller can warn.
	SplitLong bool
}

// Sequence is one packed training sequence: [CLS] s1 s2 ... [SEP], never
// longer than SeqLen and never spanning two documents.
type Sequence struct {
	IDs []int
	Doc int // index of the source document
}

// PackStats counts what packing did.
type PackStats struct {
	Documents, Sentences, Sequences int
	// Empty counts sentences that produced no tokens (only control
	// characters or invalid bytes, say); they are skipped.
	Empty int
	// Truncated counts sentences cut to SeqLen-2 tokens, and
	// DroppedTokens the tokens cut from them.
	Truncated, DroppedTokens int
	Tokens                   int // tokens packed, specials excluded
}

// Pack tokenizes each document's sentences and packs consecutive sentences
// greedily into sequences of up to cfg.SeqLen tokens. A document with no
// tokens yields no sequence; a corpus with no tokens at all is an error
// wrapping ErrEmpty.
func Pack(tok *Tokenizer, docs []Document, cfg PackConfig) ([]Sequence, PackStats, error) {
	var st PackStats
	if cfg.SeqLen < 3 {
		return nil, st, fmt.Errorf("pack: SeqLen %d leaves no room for [CLS] x [SEP]", cfg.SeqLen)
	}
	if cfg.SeqLen > tok.cfg.MaxLen {
		return nil, st, fmt.Errorf("pack: SeqLen %d exceeds the tokenizer's MaxLen %d", cfg.SeqLen, tok.cfg.MaxLen)
	}
	budget := cfg.SeqLen - 2
	var seqs []Sequence
	var cur []int
	flush := func(doc int) {
		if len(cur) == 0 {
			return
		}
		ids := make([]int, 0, len(cur)+2)
		ids = append(ids, tok.sp.CLS)
		ids = append(ids, cur...)
		ids = append(ids, tok.sp.SEP)
		seqs = append(seqs, Sequence{IDs: ids, Doc: doc})
		cur = cur[:0]
	}
	for d, doc := range docs {
		st.Documents++
		for _, s := range doc.Sentences {
			st.Sentences++
			ids, _, err := tok.wordIDs(s, 0)
			if err != nil {
				return nil, st, fmt.Errorf("pack: document %q: %w", doc.Name, err)
			}
			if len(ids) == 0 {
				st.Empty++
				continue
			}
			if len(ids) > budget {
				if cfg.SplitLong {
					flush(d)
					for len(ids) > budget {
						cur = append(cur, ids[:budget]...)
						st.Tokens += budget
						flush(d)
						ids = ids[budget:]
					}
				} else {
					st.Truncated++
					st.DroppedTokens += len(ids) - budget
					ids = ids[:budget]
				}
			}
			if len(cur)+len(ids) > budget {
				flush(d)
			}
			cur = append(cur, ids...)
			st.Tokens += len(ids)
		}
		flush(d)
	}
	st.Sequences = len(seqs)
	if len(seqs) == 0 {
		return nil, st, fmt.Errorf("pack: %w: %d documents, %d sentences, none with a token", ErrEmpty, st.Documents, st.Sentences)
	}
	return seqs, st, nil
}

// PadSequences lays sequences out as a padded [len(seqs), n] batch
// (n = the longest when n is 0), with an attention mask and zero type ids.
func (t *Tokenizer) PadSequences(seqs []Sequence, n int) (*Batch, error) {
	if len(seqs) == 0 {
		return nil, fmt.Errorf("pad sequences: none given")
	}
	if n == 0 {
		for _, s := range seqs {
			n = max(n, len(s.IDs))
		}
	}
	encs := make([]*Encoding, len(seqs))
	for i, s := range seqs {
		e := &Encoding{IDs: s.IDs, TypeIDs: make([]int, len(s.IDs)), AttentionMask: make([]int, len(s.IDs))}
		for j := range e.AttentionMask {
			e.AttentionMask[j] = 1
		}
		encs[i] = e
	}
	return t.Collate(encs, n)
}
