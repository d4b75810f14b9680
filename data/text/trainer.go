package text

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// Score selects how the trainer ranks candidate merges.
type Score int

const (
	// Frequency ranks pairs by count(ab) alone: byte-pair-encoding merges
	// on "##"-marked pieces, which is what Hugging Face's
	// WordPieceTrainer does. It is the default: on Newton's Opticks
	// with 2000 tokens it needs 0.30 pieces per character of training text
	// where Likelihood needs 0.70, which prefers pairs of rare pieces.
	Frequency Score = iota
	// Likelihood ranks a pair (a, b) by count(ab) / (count(a) * count(b)),
	// the merge that most raises the corpus likelihood under a unigram
	// model of the pieces: WordPiece as described by Schuster & Nakajima
	// and by Hugging Face's course.
	Likelihood
)

// TrainConfig configures vocabulary training.
type TrainConfig struct {
	// VocabSize is the size of the finished vocabulary, special tokens
	// included.
	VocabSize int
	// MinFrequency stops training when the best pair occurs fewer times
	// than this (0 means 2: a merge seen once never pays).
	MinFrequency int
	Score        Score
	// Basic splits training text into words: use the tokenizer's
	// (DefaultConfig().Basic for uncased BERT; the zero value is cased).
	Basic Basic
	// MaxCharsPerWord skips longer words (the tokenizer maps them to
	// [UNK]); 0 means 100.
	MaxCharsPerWord int
}

// Trainer learns a WordPiece vocabulary from word counts. Training is
// deterministic: words, candidates and ties are ordered by counts and then
// by their strings, never by map order.
type Trainer struct {
	cfg    TrainConfig
	counts map[string]int64
}

// NewTrainer returns an empty trainer.
func NewTrainer(cfg TrainConfig) *Trainer {
	if cfg.MinFrequency == 0 {
		cfg.MinFrequency = 2
	}
	if cfg.MaxCharsPerWord == 0 {
		cfg.MaxCharsPerWord = 100
	}
	return &Trainer{cfg: cfg, counts: make(map[string]int64)}
}

// Add counts the words of one text (split by cfg.Basic).
func (tr *Trainer) Add(text string) {
	for _, w := range tr.cfg.Basic.Split(text) {
		tr.counts[w]++
	}
}

// AddWord counts word n more times (the word is used as is).
func (tr *Trainer) AddWord(word string, n int64) {
	if word != "" && n > 0 {
		tr.counts[word] += n
	}
}

// Words is the number of distinct words counted so far.
func (tr *Trainer) Words() int { return len(tr.counts) }

type trainWord struct {
	syms []int32
	freq int64
}

type trainPair struct {
	a, b  int32
	n     int64
	words []int32 // words that may contain the pair (checked when merging)
}

// Train builds the vocabulary: the special tokens, then the alphabet (every
// character seen at the start of a word, and as "##c" inside one) in byte
// order, then merged pieces in the order they were learnt, until VocabSize
// tokens or no pair reaches MinFrequency. When the alphabet alone does not
// fit, the most frequent characters are kept and words using the others do
// not take part in merges (they will tokenize to [UNK]).
func (tr *Trainer) Train() (*Vocab, error) {
	cfg := tr.cfg
	if len(tr.counts) == 0 {
		return nil, errors.New("train vocab: no words (empty corpus)")
	}
	if cfg.VocabSize <= len(SpecialTokens) {
		return nil, fmt.Errorf("train vocab: VocabSize %d leaves no room beyond the %d special tokens", cfg.VocabSize, len(SpecialTokens))
	}
	wordList := make([]string, 0, len(tr.counts))
	for w := range tr.counts {
		if utf8.RuneCountInString(w) <= cfg.MaxCharsPerWord {
			wordList = append(wordList, w)
		}
	}
	sort.Strings(wordList)

	var syms []string
	symID := map[string]int32{}
	var symCount []int64
	intern := func(s string) int32 {
		if id, ok := symID[s]; ok {
			return id
		}
		id := int32(len(syms))
		syms = append(syms, s)
		symID[s] = id
		symCount = append(symCount, 0)
		return id
	}
	words := make([]trainWord, 0, len(wordList))
	for _, w := range wordList {
		tw := trainWord{freq: tr.counts[w]}
		for i, r := range w {
			s := string(r)
			if i > 0 {
				s = ContinuationPrefix + s
			}
			id := intern(s)
			symCount[id] += tw.freq
			tw.syms = append(tw.syms, id)
		}
		words = append(words, tw)
	}

	// The alphabet, trimmed to what fits.
	room := cfg.VocabSize - len(SpecialTokens)
	alpha := make([]int32, len(syms))
	for i := range alpha {
		alpha[i] = int32(i)
	}
	keep := make([]bool, len(syms))
	if len(alpha) > room {
		sort.Slice(alpha, func(i, j int) bool {
			ci, cj := symCount[alpha[i]], symCount[alpha[j]]
			if ci != cj {
				return ci > cj
			}
			return syms[alpha[i]] < syms[alpha[j]]
		})
		alpha = alpha[:room]
	}
	for _, id := range alpha {
		keep[id] = true
	}
	sort.Slice(alpha, func(i, j int) bool { return syms[alpha[i]] < syms[alpha[j]] })
	vocab := append([]string(nil), SpecialTokens...)
	inVocab := map[string]bool{}
	for _, s := range SpecialTokens {
		inVocab[s] = true
	}
	for _, id := range alpha {
		if !inVocab[syms[id]] {
			vocab = append(vocab, syms[id])
			inVocab[syms[id]] = true
		}
	}

	pairs := map[uint64]*trainPair{}
	var pairList []*trainPair
	key := func(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }
	addPairs := func(wi int32, sign int64) {
		w := &words[wi]
		for i := 0; i+1 < len(w.syms); i++ {
			k := key(w.syms[i], w.syms[i+1])
			p := pairs[k]
			if p == nil {
				p = &trainPair{a: w.syms[i], b: w.syms[i+1]}
				pairs[k] = p
				pairList = append(pairList, p)
			}
			p.n += sign * w.freq
			if sign > 0 && (len(p.words) == 0 || p.words[len(p.words)-1] != wi) {
				p.words = append(p.words, wi)
			}
		}
	}
	for wi := range words {
		ok := true
		for _, s := range words[wi].syms {
			ok = ok && keep[s]
		}
		if ok {
			addPairs(int32(wi), 1)
		} else {
			words[wi].syms = nil // excluded from merging
		}
	}

	better := func(p, q *trainPair) bool { // p ranks above q
		if cfg.Score == Likelihood {
			sp := float64(p.n) / (float64(symCount[p.a]) * float64(symCount[p.b]))
			sq := float64(q.n) / (float64(symCount[q.a]) * float64(symCount[q.b]))
			if sp != sq {
				return sp > sq
			}
		}
		if p.n != q.n {
			return p.n > q.n
		}
		if syms[p.a] != syms[q.a] {
			return syms[p.a] < syms[q.a]
		}
		return syms[p.b] < syms[q.b]
	}
	seen := make([]int, len(words))
	for step := 1; len(vocab) < cfg.VocabSize; step++ {
		if step%512 == 0 { // drop dead pairs so the scan stays short
			live := pairList[:0]
			for _, p := range pairList {
				if p.n > 0 {
					live = append(live, p)
				} else {
					delete(pairs, key(p.a, p.b))
				}
			}
			clear(pairList[len(live):])
			pairList = live
		}
		var best *trainPair
		for _, p := range pairList {
			if p.n >= int64(cfg.MinFrequency) && (best == nil || better(p, best)) {
				best = p
			}
		}
		if best == nil {
			break
		}
		a, b := best.a, best.b
		merged := syms[a] + strings.TrimPrefix(syms[b], ContinuationPrefix)
		m := intern(merged)
		for _, wi := range best.words {
			if seen[wi] == step {
				continue
			}
			seen[wi] = step
			w := &words[wi]
			has := false
			for i := 0; i+1 < len(w.syms); i++ {
				if w.syms[i] == a && w.syms[i+1] == b {
					has = true
					break
				}
			}
			if !has {
				continue
			}
			addPairs(wi, -1)
			out := w.syms[:0]
			for i := 0; i < len(w.syms); i++ {
				if i+1 < len(w.syms) && w.syms[i] == a && w.syms[i+1] == b {
					out = append(out, m)
					symCount[a] -= w.freq
					symCount[b] -= w.freq
					symCount[m] += w.freq
					i++
					continue
				}
				out = append(out, w.syms[i])
			}
			w.syms = out
			addPairs(wi, 1)
		}
		if !inVocab[merged] {
			vocab = append(vocab, merged)
			inVocab[merged] = true
		}
	}
	return NewVocab(vocab)
}
