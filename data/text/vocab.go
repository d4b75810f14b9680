package text

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/sslzoo/sslzoo/internal/atomicfile"
)

// ContinuationPrefix marks a WordPiece that continues a word ("##ing").
const ContinuationPrefix = "##"

// The special tokens BERT vocabularies carry.
const (
	CLS  = "[CLS]"
	SEP  = "[SEP]"
	PAD  = "[PAD]"
	MASK = "[MASK]"
	UNK  = "[UNK]"
)

// SpecialTokens lists the special tokens in the order the trainer writes them
// at the head of a new vocabulary ([PAD] first so that its id is 0, as in
// bert-base-uncased).
var SpecialTokens = []string{PAD, UNK, CLS, SEP, MASK}

// Vocab maps WordPiece tokens to ids; the id of a token is its line number
// (from 0) in vocab.txt.
type Vocab struct {
	tokens []string
	ids    map[string]int
	// cont maps a continuation piece without its "##" to its id, so the
	// WordPiece search can look up substrings of a word without building
	// "##"+piece strings.
	cont map[string]int
	// maxHead and maxCont are the longest word-initial and continuation
	// pieces in runes; longer candidates cannot match.
	maxHead, maxCont int
}

// NewVocab builds a vocabulary from tokens in id order. A token may not
// contain a line break (it could not be saved in vocab.txt) and must be valid
// UTF-8. A repeated token keeps its last id, as Hugging Face's load_vocab does;
// the earlier line still occupies its id.
func NewVocab(tokens []string) (*Vocab, error) {
	if len(tokens) == 0 {
		return nil, errors.New("vocab: no tokens")
	}
	v := &Vocab{
		tokens: append([]string(nil), tokens...),
		ids:    make(map[string]int, len(tokens)),
		cont:   make(map[string]int),
	}
	for i, tok := range tokens {
		if strings.ContainsAny(tok, "\r\n") {
			return nil, fmt.Errorf("vocab: token %d (%q) contains a line break", i, tok)
		}
		if !utf8.ValidString(tok) {
			return nil, fmt.Errorf("vocab: token %d (%q) is not valid UTF-8", i, tok)
		}
		v.ids[tok] = i
	}
	for tok, id := range v.ids {
		if rest, ok := strings.CutPrefix(tok, ContinuationPrefix); ok && rest != "" {
			v.cont[rest] = id
			v.maxCont = max(v.maxCont, utf8.RuneCountInString(rest))
		}
		v.maxHead = max(v.maxHead, utf8.RuneCountInString(tok))
	}
	return v, nil
}

// ReadVocab reads vocab.txt: one token per line, the line number being the
// id. CRLF line ends and a leading byte-order mark are accepted; an empty line
// is the empty token (it keeps its id but can never match).
func ReadVocab(r io.Reader) (*Vocab, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	var tokens []string
	for sc.Scan() {
		line := sc.Text()
		if len(tokens) == 0 {
			line = strings.TrimPrefix(line, "\uFEFF")
		}
		if !utf8.ValidString(line) {
			return nil, fmt.Errorf("vocab: line %d is not valid UTF-8", len(tokens)+1)
		}
		tokens = append(tokens, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("vocab: read line %d: %w", len(tokens)+1, err)
	}
	return NewVocab(tokens)
}

// LoadVocab reads a vocab.txt file.
func LoadVocab(path string) (*Vocab, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load vocab: %w", err)
	}
	defer f.Close()
	v, err := ReadVocab(f)
	if err != nil {
		return nil, fmt.Errorf("load vocab %s: %w", path, err)
	}
	return v, nil
}

// Write writes the vocabulary in vocab.txt format (every token followed by
// "\n").
func (v *Vocab) Write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, tok := range v.tokens {
		bw.WriteString(tok)
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// Save writes vocab.txt atomically (temp file in the same folder, then
// rename), so a crash never leaves a truncated vocabulary behind.
func (v *Vocab) Save(path string) error {
	if err := atomicfile.Write(path, v.Write); err != nil {
		return fmt.Errorf("save vocab: %w", err)
	}
	return nil
}

// SHA256 is the hex sha256 of the vocabulary as Write serialises it; for a
// vocab.txt with "\n" line ends this equals the file's own hash.
func (v *Vocab) SHA256() string {
	var b bytes.Buffer
	v.Write(&b)
	sum := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(sum[:])
}

// Size is the number of ids (lines), which is the embedding table size.
func (v *Vocab) Size() int { return len(v.tokens) }

// ID returns the id of tok.
func (v *Vocab) ID(tok string) (int, bool) {
	id, ok := v.ids[tok]
	return id, ok
}

// Token returns the token with the given id, or "" when out of range.
func (v *Vocab) Token(id int) string {
	if id < 0 || id >= len(v.tokens) {
		return ""
	}
	return v.tokens[id]
}

// Tokens returns a copy of the tokens in id order.
func (v *Vocab) Tokens() []string { return append([]string(nil), v.tokens...) }

// IsContinuation reports whether id is a "##" continuation piece.
func (v *Vocab) IsContinuation(id int) bool {
	return id >= 0 && id < len(v.tokens) && len(v.tokens[id]) > len(ContinuationPrefix) &&
		strings.HasPrefix(v.tokens[id], ContinuationPrefix)
}
