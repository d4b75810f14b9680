package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sslzoo/sslzoo/data/text"
	ortruntime "github.com/sslzoo/sslzoo/runtime"
)

// tokenizerMeta is the part of a model's sslzoo.tokenizer metadata that
// rebuilds the tokenizer it was exported with.
type tokenizerMeta struct {
	VocabSHA256     string `json:"vocab_sha256"`
	VocabSize       int    `json:"vocab_size"`
	Lowercase       bool   `json:"lowercase"`
	StripAccents    bool   `json:"strip_accents"`
	SplitCJK        bool   `json:"split_cjk"`
	MaxLen          int    `json:"max_len"`
	MaxCharsPerWord int    `json:"max_chars_per_word"`
}

// readTexts gathers --text values, then the lines of --text-file (one
// text per line; a final newline does not add an empty text).
func readTexts(o embedOptions) ([]string, error) {
	texts := append([]string(nil), o.Texts...)
	if o.TextFile != "" {
		raw, err := os.ReadFile(o.TextFile)
		if err != nil {
			return nil, fmt.Errorf("--text-file: %w", err)
		}
		s := strings.TrimSuffix(strings.ReplaceAll(string(raw), "\r\n", "\n"), "\n")
		if s == "" {
			return nil, fmt.Errorf("--text-file %s holds no text", o.TextFile)
		}
		texts = append(texts, strings.Split(s, "\n")...)
	}
	return texts, nil
}

// loadTokenizer builds the tokenizer a text model was exported with: the
// vocabulary from --vocab (a vocab.txt, or a Hugging Face folder with its
// tokenizer_config.json) or else vocab.txt beside the model, the settings
// from the model's sslzoo.tokenizer metadata when it has one, and at most
// seq tokens. A vocabulary that is not the one recorded (sha256), or not
// of the model's size, is refused.
func loadTokenizer(o embedOptions, meta map[string]string, seq int) (*text.Tokenizer, error) {
	path := o.Vocab
	if path == "" {
		path = filepath.Join(filepath.Dir(o.Model), "vocab.txt")
		if _, err := os.Stat(path); err != nil {
			return nil, usagef("sslzoo embed: --vocab is required: no vocab.txt beside %s", o.Model)
		}
	}
	var tm *tokenizerMeta
	if raw := meta[tokenizerKey]; raw != "" {
		tm = new(tokenizerMeta)
		if err := json.Unmarshal([]byte(raw), tm); err != nil {
			return nil, fmt.Errorf("%s: bad %s metadata: %w", o.Model, tokenizerKey, err)
		}
	}
	var tok *text.Tokenizer
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--vocab: %w", err)
	}
	if fi.IsDir() && tm == nil {
		if tok, err = text.LoadDir(path); err != nil {
			return nil, fmt.Errorf("--vocab: %w", err)
		}
	} else {
		if fi.IsDir() {
			path = filepath.Join(path, "vocab.txt")
		}
		v, err := text.LoadVocab(path)
		if err != nil {
			return nil, fmt.Errorf("--vocab: %w", err)
		}
		cfg := text.DefaultConfig()
		if tm != nil {
			if tm.VocabSHA256 != "" && v.SHA256() != tm.VocabSHA256 {
				return nil, fmt.Errorf("--vocab %s is not the vocabulary %s was exported with (sha256 %.12s..., the model records %.12s...)",
					path, o.Model, v.SHA256(), tm.VocabSHA256)
			}
			cfg.Basic.Lowercase, cfg.Basic.StripAccents, cfg.Basic.SplitCJK = tm.Lowercase, tm.StripAccents, tm.SplitCJK
			cfg.MaxCharsPerWord = tm.MaxCharsPerWord
		}
		if tok, err = text.New(v, cfg); err != nil {
			return nil, fmt.Errorf("--vocab %s: %w", path, err)
		}
	}
	if n := modelVocabSize(meta); n > 0 && tok.Vocab().Size() != n {
		return nil, fmt.Errorf("--vocab %s has %d tokens but the model's vocabulary has %d", path, tok.Vocab().Size(), n)
	}
	cfg := tok.Config()
	cfg.MaxLen = seq
	return text.New(tok.Vocab(), cfg)
}

// modelVocabSize reads vocab_size from the model's sslzoo.text metadata (0
// when absent).
func modelVocabSize(meta map[string]string) int {
	var t struct {
		VocabSize int `json:"vocab_size"`
	}
	if json.Unmarshal([]byte(meta["sslzoo.text"]), &t) != nil {
		return 0
	}
	return t.VocabSize
}

// textInputs tokenizes the texts in Go for a model with int64 input_ids
// and attention_mask [batch, seq]: [CLS] text [SEP], right-padded with
// [PAD] (mask 0) to the exported length. Longer texts are truncated to it,
// with one warning on warn.
func textInputs(eng ortruntime.Engine, o embedOptions, warn io.Writer) ([]*ortruntime.Tensor, error) {
	ins := eng.Inputs()
	if len(ins) != 2 || ins[0].DType != ortruntime.Int64 || ins[1].DType != ortruntime.Int64 || len(ins[0].Shape) != 2 {
		return nil, usagef("sslzoo embed: --text needs a text model (int64 input_ids and attention_mask [batch, seq]); this one takes %v", ins)
	}
	seq := ins[0].Shape[1]
	if seq < 3 {
		return nil, fmt.Errorf("the model's sequence axis %v is not a fixed length of at least 3", ins[0])
	}
	texts, err := readTexts(o)
	if err != nil {
		return nil, err
	}
	tok, err := loadTokenizer(o, eng.Metadata(), seq)
	if err != nil {
		return nil, err
	}
	ids, mask := make([]int64, len(texts)*seq), make([]int64, len(texts)*seq)
	cut := 0
	for i, s := range texts {
		e, err := tok.Encode(s)
		if err != nil {
			return nil, fmt.Errorf("text %d: %w", i+1, err)
		}
		if e.Truncated > 0 {
			cut++
		}
		if err := tok.Pad(e, seq); err != nil {
			return nil, fmt.Errorf("text %d: %w", i+1, err)
		}
		for j := range seq {
			ids[i*seq+j], mask[i*seq+j] = int64(e.IDs[j]), int64(e.AttentionMask[j])
		}
	}
	if cut > 0 {
		fmt.Fprintf(warn, "sslzoo embed: warning: %d of %d texts were longer than the model's %d tokens and were truncated\n", cut, len(texts), seq)
	}
	shape := []int{len(texts), seq}
	return []*ortruntime.Tensor{ortruntime.NewTensor(shape, ids), ortruntime.NewTensor(shape, mask)}, nil
}
