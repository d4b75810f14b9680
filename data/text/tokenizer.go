package text

import (
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"unicode/utf8"
)

// Config sets up a Tokenizer. DefaultConfig is bert-base-uncased's.
type Config struct {
	Basic Basic
	// MaxLen is the longest encoding (special tokens included) before
	// truncation; 0 means 512.
	MaxLen int
	// MaxCharsPerWord: longer words become [UNK] whole; 0 means 100.
	MaxCharsPerWord int
	// SplitSpecialTokens tokenizes "[MASK]" and friends found in the input
	// as ordinary text. By default (false, as in Hugging Face) a special token
	// written literally in the text becomes that special token.
	SplitSpecialTokens bool
	// StrictUTF8 makes encoding fail with ErrInvalidUTF8 instead of dropping
	// invalid bytes.
	StrictUTF8 bool
}

// DefaultConfig is the uncased BERT setup: lower-case, strip accents, split
// CJK ideographs, 512 tokens, 100 characters per word.
func DefaultConfig() Config {
	return Config{Basic: Basic{Lowercase: true, StripAccents: true, SplitCJK: true}}
}

// Specials holds the ids of the special tokens.
type Specials struct{ CLS, SEP, PAD, MASK, UNK int }

// Tokenizer is a BERT WordPiece tokenizer. It is safe for concurrent use.
type Tokenizer struct {
	vocab    *Vocab
	cfg      Config
	sp       Specials
	special  []bool   // by id
	literals []string // special tokens, longest first, for matching in text
	// truncated counts encodings that lost tokens to truncation, so a
	// caller can warn once per run instead of once per sequence.
	truncated atomic.Int64
}

// New builds a tokenizer over v. The vocabulary must hold [CLS], [SEP],
// [PAD], [MASK] and [UNK].
func New(v *Vocab, cfg Config) (*Tokenizer, error) {
	if cfg.MaxLen == 0 {
		cfg.MaxLen = 512
	}
	if cfg.MaxCharsPerWord == 0 {
		cfg.MaxCharsPerWord = 100
	}
	if cfg.MaxLen < 3 {
		return nil, fmt.Errorf("tokenizer: MaxLen %d leaves no room for [CLS] x [SEP]", cfg.MaxLen)
	}
	if cfg.MaxCharsPerWord < 1 {
		return nil, fmt.Errorf("tokenizer: MaxCharsPerWord %d must be positive", cfg.MaxCharsPerWord)
	}
	t := &Tokenizer{vocab: v, cfg: cfg, special: make([]bool, v.Size())}
	var missing []string
	for _, s := range []struct {
		name string
		id   *int
	}{{CLS, &t.sp.CLS}, {SEP, &t.sp.SEP}, {PAD, &t.sp.PAD}, {MASK, &t.sp.MASK}, {UNK, &t.sp.UNK}} {
		id, ok := v.ID(s.name)
		if !ok {
			missing = append(missing, s.name)
			continue
		}
		*s.id = id
		t.special[id] = true
		t.literals = append(t.literals, s.name)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("tokenizer: vocabulary lacks special tokens %s", strings.Join(missing, " "))
	}
	sort.Slice(t.literals, func(i, j int) bool { return len(t.literals[i]) > len(t.literals[j]) })
	return t, nil
}

// Load reads vocab.txt and builds a tokenizer over it.
func Load(vocabPath string, cfg Config) (*Tokenizer, error) {
	v, err := LoadVocab(vocabPath)
	if err != nil {
		return nil, err
	}
	return New(v, cfg)
}

// Vocab returns the tokenizer's vocabulary.
func (t *Tokenizer) Vocab() *Vocab { return t.vocab }

// Config returns the configuration with defaults filled in.
func (t *Tokenizer) Config() Config { return t.cfg }

// Specials returns the special token ids.
func (t *Tokenizer) Specials() Specials { return t.sp }

// IsSpecial reports whether id is one of the five special tokens.
func (t *Tokenizer) IsSpecial(id int) bool { return id >= 0 && id < len(t.special) && t.special[id] }

// Truncations is how many encodings so far were truncated to MaxLen.
func (t *Tokenizer) Truncations() int64 { return t.truncated.Load() }

// Encoding is one encoded sequence (or pair).
type Encoding struct {
	IDs           []int
	TypeIDs       []int // 0 for [CLS] A [SEP], 1 for B [SEP]
	AttentionMask []int // 1 for tokens, 0 for padding
	// Words is the index of the word (basic-tokenizer output, counted over
	// the whole encoding) each token came from; -1 for added special tokens
	// and padding. Whole-word masking groups tokens by it.
	Words []int
	// Truncated is the number of tokens cut to fit MaxLen.
	Truncated int
}

// Len is the number of positions, padding included.
func (e *Encoding) Len() int { return len(e.IDs) }

// wordIDs tokenizes one text into ids with their word indices (offset by
// base). No special tokens are added.
func (t *Tokenizer) wordIDs(text string, base int) (ids, words []int, err error) {
	if t.cfg.StrictUTF8 {
		if err := CheckUTF8(text); err != nil {
			return nil, nil, err
		}
	}
	w := base
	emit := func(section string) {
		for _, word := range t.cfg.Basic.Split(section) {
			n := len(ids)
			ids = t.wordPiece(word, ids)
			for range len(ids) - n {
				words = append(words, w)
			}
			w++
		}
	}
	for len(text) > 0 {
		pos, lit := len(text), ""
		if !t.cfg.SplitSpecialTokens {
			pos, lit = t.nextLiteral(text)
		}
		emit(text[:pos])
		if lit == "" {
			break
		}
		id, _ := t.vocab.ID(lit)
		ids = append(ids, id)
		words = append(words, w)
		w++
		text = text[pos+len(lit):]
	}
	return ids, words, nil
}

// nextLiteral finds the first special token written in s (the longest one
// at the earliest position) and returns its byte position, or len(s), "".
func (t *Tokenizer) nextLiteral(s string) (int, string) {
	for i := 0; i < len(s); i++ {
		if s[i] != '[' {
			continue
		}
		for _, lit := range t.literals {
			if strings.HasPrefix(s[i:], lit) {
				return i, lit
			}
		}
	}
	return len(s), ""
}

// wordPiece appends the ids of word's pieces: greedy longest match first,
// "##" marking pieces after the first; a word with an unmatched remainder,
// or longer than MaxCharsPerWord, is a single [UNK].
func (t *Tokenizer) wordPiece(word string, out []int) []int {
	n := utf8.RuneCountInString(word)
	if n > t.cfg.MaxCharsPerWord {
		return append(out, t.sp.UNK)
	}
	var offsBuf [64]int
	offs := offsBuf[:0]
	for i := range word {
		offs = append(offs, i)
	}
	offs = append(offs, len(word))
	v := t.vocab
	mark := len(out)
	for start := 0; start < n; {
		table, longest := v.ids, v.maxHead
		if start > 0 {
			table, longest = v.cont, v.maxCont
		}
		end := min(n, start+longest)
		id := -1
		for ; end > start; end-- {
			if got, ok := table[word[offs[start]:offs[end]]]; ok {
				id = got
				break
			}
		}
		if id < 0 {
			return append(out[:mark], t.sp.UNK)
		}
		out = append(out, id)
		start = end
	}
	return out
}

// Tokenize returns the WordPiece tokens of text, without special tokens.
func (t *Tokenizer) Tokenize(text string) ([]string, error) {
	ids, _, err := t.wordIDs(text, 0)
	if err != nil {
		return nil, err
	}
	toks := make([]string, len(ids))
	for i, id := range ids {
		toks[i] = t.vocab.Token(id)
	}
	return toks, nil
}

// Encode encodes one text as [CLS] text [SEP], truncating the text's tokens
// to fit MaxLen (Encoding.Truncated says how many were cut). Empty text
// encodes as [CLS] [SEP], as in Hugging Face.
func (t *Tokenizer) Encode(text string) (*Encoding, error) {
	a, wa, err := t.wordIDs(text, 0)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	cut := 0
	if budget := t.cfg.MaxLen - 2; len(a) > budget {
		cut = len(a) - budget
		a, wa = a[:budget], wa[:budget]
	}
	e := &Encoding{Truncated: cut}
	e.add(t.sp.CLS, 0, -1)
	for i, id := range a {
		e.add(id, 0, wa[i])
	}
	e.add(t.sp.SEP, 0, -1)
	if cut > 0 {
		t.truncated.Add(1)
	}
	return e, nil
}

// EncodePair encodes [CLS] a [SEP] b [SEP] with type ids 0 then 1. When the
// pair is too long, tokens are removed one at a time from the end of the
// longer side (from b when they are equal), which is Hugging Face's
// "longest_first" strategy.
func (t *Tokenizer) EncodePair(a, b string) (*Encoding, error) {
	ia, wa, err := t.wordIDs(a, 0)
	if err != nil {
		return nil, fmt.Errorf("encode pair, first text: %w", err)
	}
	nextWord := 0
	if len(wa) > 0 {
		nextWord = wa[len(wa)-1] + 1
	}
	ib, wb, err := t.wordIDs(b, nextWord)
	if err != nil {
		return nil, fmt.Errorf("encode pair, second text: %w", err)
	}
	na, nb := len(ia), len(ib)
	budget := t.cfg.MaxLen - 3
	cut := 0
	for na+nb > budget {
		if na > nb {
			na--
		} else {
			nb--
		}
		cut++
	}
	e := &Encoding{Truncated: cut}
	e.add(t.sp.CLS, 0, -1)
	for i := range na {
		e.add(ia[i], 0, wa[i])
	}
	e.add(t.sp.SEP, 0, -1)
	for i := range nb {
		e.add(ib[i], 1, wb[i])
	}
	e.add(t.sp.SEP, 1, -1)
	if cut > 0 {
		t.truncated.Add(1)
	}
	return e, nil
}

func (e *Encoding) add(id, typ, word int) {
	e.IDs = append(e.IDs, id)
	e.TypeIDs = append(e.TypeIDs, typ)
	e.AttentionMask = append(e.AttentionMask, 1)
	e.Words = append(e.Words, word)
}

// Pad extends e with [PAD] (type 0, attention 0) to length n. It is an
// error for e to be longer than n.
func (t *Tokenizer) Pad(e *Encoding, n int) error {
	if e.Len() > n {
		return fmt.Errorf("pad: encoding has %d tokens, more than the padded length %d", e.Len(), n)
	}
	for e.Len() < n {
		e.IDs = append(e.IDs, t.sp.PAD)
		e.TypeIDs = append(e.TypeIDs, 0)
		e.AttentionMask = append(e.AttentionMask, 0)
		e.Words = append(e.Words, -1)
	}
	return nil
}

// Batch is a padded batch in row-major [B, T] layout, ready for
// autograd.Embedding (IDs) and an attention mask.
type Batch struct {
	B, T          int
	IDs           []int
	TypeIDs       []int
	AttentionMask []int
}

// EncodeBatch encodes each text and pads all to the longest one.
func (t *Tokenizer) EncodeBatch(texts []string) (*Batch, error) {
	if len(texts) == 0 {
		return nil, fmt.Errorf("encode batch: no texts")
	}
	encs := make([]*Encoding, len(texts))
	longest := 0
	for i, s := range texts {
		e, err := t.Encode(s)
		if err != nil {
			return nil, fmt.Errorf("encode batch, text %d: %w", i, err)
		}
		encs[i] = e
		longest = max(longest, e.Len())
	}
	return t.Collate(encs, longest)
}

// Collate pads encodings to length n and lays them out as a Batch.
func (t *Tokenizer) Collate(encs []*Encoding, n int) (*Batch, error) {
	b := &Batch{B: len(encs), T: n}
	for i, e := range encs {
		if e.Len() > n {
			return nil, fmt.Errorf("collate: sequence %d has %d tokens, more than %d", i, e.Len(), n)
		}
		b.IDs = append(b.IDs, e.IDs...)
		b.TypeIDs = append(b.TypeIDs, e.TypeIDs...)
		b.AttentionMask = append(b.AttentionMask, e.AttentionMask...)
		for range n - e.Len() {
			b.IDs = append(b.IDs, t.sp.PAD)
			b.TypeIDs = append(b.TypeIDs, 0)
			b.AttentionMask = append(b.AttentionMask, 0)
		}
	}
	return b, nil
}

// Decode turns ids back into text: pieces are glued to the word they
// continue and words are joined by spaces. Special tokens are dropped when
// skipSpecial is set. Ids outside the vocabulary decode as [UNK].
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) string {
	var sb strings.Builder
	for _, id := range ids {
		if skipSpecial && t.IsSpecial(id) {
			continue
		}
		tok := t.vocab.Token(id)
		if id < 0 || id >= t.vocab.Size() {
			tok = UNK
		}
		if rest, ok := strings.CutPrefix(tok, ContinuationPrefix); ok && rest != "" && sb.Len() > 0 {
			sb.WriteString(rest)
			continue
		}
		if sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(tok)
	}
	return sb.String()
}
