package text

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Metadata keys under which a weights file or an exported model carries its
// tokenizer, so that the file alone tokenizes text the way it was trained.
const (
	// MetaTokenizer holds Tokenizer.Metadata: the settings and the
	// vocabulary's sha256 and size.
	MetaTokenizer = "sslzoo.tokenizer"
	// MetaVocab holds the vocabulary itself, in vocab.txt form.
	MetaVocab = "sslzoo.vocab"
)

// maxVocabBytes bounds a vocabulary read from metadata: bert-base-uncased's
// 30,522 tokens take 232 KB, multilingual vocabularies a few MB.
const maxVocabBytes = 32 << 20

// Recorded is what a model records about its tokenizer (MetaTokenizer).
type Recorded struct {
	Type            string `json:"type"`
	VocabSHA256     string `json:"vocab_sha256"`
	VocabSize       int    `json:"vocab_size"`
	Lowercase       bool   `json:"lowercase"`
	StripAccents    bool   `json:"strip_accents"`
	SplitCJK        bool   `json:"split_cjk"`
	MaxLen          int    `json:"max_len"`
	MaxCharsPerWord int    `json:"max_chars_per_word"`
}

// ParseRecorded reads a MetaTokenizer value.
func ParseRecorded(raw string) (Recorded, error) {
	var r Recorded
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		return r, fmt.Errorf("bad %s metadata: %w", MetaTokenizer, err)
	}
	if r.Type != "" && r.Type != "bert-wordpiece" {
		return r, fmt.Errorf("%s metadata: tokenizer type %q is not bert-wordpiece", MetaTokenizer, r.Type)
	}
	return r, nil
}

// Config is the tokenizer configuration the record describes.
func (r Recorded) Config() Config {
	cfg := DefaultConfig()
	cfg.Basic.Lowercase, cfg.Basic.StripAccents, cfg.Basic.SplitCJK = r.Lowercase, r.StripAccents, r.SplitCJK
	cfg.MaxLen, cfg.MaxCharsPerWord = r.MaxLen, r.MaxCharsPerWord
	return cfg
}

// Check refuses a vocabulary that is not the recorded one.
func (r Recorded) Check(v *Vocab) error {
	if r.VocabSHA256 != "" && v.SHA256() != r.VocabSHA256 {
		return fmt.Errorf("the vocabulary is not the one the model records (sha256 %.12s..., recorded %.12s...)", v.SHA256(), r.VocabSHA256)
	}
	if r.VocabSize > 0 && v.Size() != r.VocabSize {
		return fmt.Errorf("the vocabulary has %d tokens but the model records %d", v.Size(), r.VocabSize)
	}
	return nil
}

// MetadataEntries is the tokenizer as metadata: MetaTokenizer and
// MetaVocab, for a weights file or an exported model.
func (t *Tokenizer) MetadataEntries() map[string]string {
	var b bytes.Buffer
	t.vocab.Write(&b) // a bytes.Buffer does not fail
	return map[string]string{MetaTokenizer: t.Metadata(), MetaVocab: b.String()}
}

// ErrNoVocab means metadata records no vocabulary (MetaVocab).
var ErrNoVocab = errors.New("no " + MetaVocab + " metadata")

// FromMetadata rebuilds the tokenizer that MetadataEntries recorded. It
// fails with ErrNoVocab when the vocabulary is not there, and refuses a
// vocabulary whose sha256 or size differs from the record.
func FromMetadata(meta map[string]string) (*Tokenizer, error) {
	raw, ok := meta[MetaVocab]
	if !ok {
		return nil, ErrNoVocab
	}
	if len(raw) > maxVocabBytes {
		return nil, fmt.Errorf("%s metadata of %d bytes is larger than any vocabulary (limit %d)", MetaVocab, len(raw), maxVocabBytes)
	}
	v, err := ReadVocab(strings.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%s metadata: %w", MetaVocab, err)
	}
	cfg := DefaultConfig()
	if rec, ok := meta[MetaTokenizer]; ok {
		r, err := ParseRecorded(rec)
		if err != nil {
			return nil, err
		}
		if err := r.Check(v); err != nil {
			return nil, fmt.Errorf("%s metadata: %w", MetaVocab, err)
		}
		cfg = r.Config()
	}
	return New(v, cfg)
}
