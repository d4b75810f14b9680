package text

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sslzoo/sslzoo/internal/atomicfile"
)

// hfConfig is the part of a Hugging Face tokenizer_config.json that a BERT
// WordPiece tokenizer uses.
type hfConfig struct {
	DoLowerCase          *bool           `json:"do_lower_case,omitempty"`
	StripAccents         *bool           `json:"strip_accents"`
	TokenizeChineseChars *bool           `json:"tokenize_chinese_chars,omitempty"`
	ModelMaxLength       float64         `json:"model_max_length,omitempty"`
	TokenizerClass       string          `json:"tokenizer_class,omitempty"`
	CLSToken             json.RawMessage `json:"cls_token,omitempty"`
	SEPToken             json.RawMessage `json:"sep_token,omitempty"`
	PADToken             json.RawMessage `json:"pad_token,omitempty"`
	MASKToken            json.RawMessage `json:"mask_token,omitempty"`
	UNKToken             json.RawMessage `json:"unk_token,omitempty"`
}

// LoadDir loads a Hugging Face BERT tokenizer folder: vocab.txt and, when
// present, tokenizer_config.json (do_lower_case, strip_accents,
// tokenize_chinese_chars, model_max_length and the special token names).
// Without the config the defaults are bert-base-uncased's, as in
// transformers' BertTokenizer. A model_max_length above 1e6 (the library's
// "no limit" sentinel) means 512. Special tokens other than the standard
// five names are refused rather than silently mis-tokenized.
func LoadDir(dir string) (*Tokenizer, error) {
	cfg := DefaultConfig()
	raw, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("load tokenizer %s: %w", dir, err)
	default:
		if cfg, err = parseHFConfig(raw, cfg); err != nil {
			return nil, fmt.Errorf("load tokenizer %s: %w", dir, err)
		}
	}
	t, err := Load(filepath.Join(dir, "vocab.txt"), cfg)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer %s: %w", dir, err)
	}
	return t, nil
}

// parseHFConfig applies a tokenizer_config.json's settings (LoadDir's) to
// cfg; errors name the file and the field, not the folder.
func parseHFConfig(raw []byte, cfg Config) (Config, error) {
	var hc hfConfig
	if err := json.Unmarshal(raw, &hc); err != nil {
		return cfg, fmt.Errorf("tokenizer_config.json: %w", err)
	}
	if hc.DoLowerCase != nil {
		cfg.Basic.Lowercase = *hc.DoLowerCase
	}
	cfg.Basic.StripAccents = cfg.Basic.Lowercase
	if hc.StripAccents != nil {
		cfg.Basic.StripAccents = *hc.StripAccents
	}
	if hc.TokenizeChineseChars != nil {
		cfg.Basic.SplitCJK = *hc.TokenizeChineseChars
	}
	if hc.ModelMaxLength > 0 && hc.ModelMaxLength <= 1e6 {
		cfg.MaxLen = int(hc.ModelMaxLength)
	}
	for _, sp := range []struct {
		field string
		raw   json.RawMessage
		want  string
	}{{"cls_token", hc.CLSToken, CLS}, {"sep_token", hc.SEPToken, SEP}, {"pad_token", hc.PADToken, PAD},
		{"mask_token", hc.MASKToken, MASK}, {"unk_token", hc.UNKToken, UNK}} {
		if len(sp.raw) == 0 || string(sp.raw) == "null" {
			continue
		}
		name, err := tokenName(sp.raw)
		if err != nil {
			return cfg, fmt.Errorf("tokenizer_config.json %s: %w", sp.field, err)
		}
		if name != sp.want {
			return cfg, fmt.Errorf("%s is %q; only the standard %q is supported", sp.field, name, sp.want)
		}
	}
	return cfg, nil
}

// tokenName reads a special token written as a string or as an AddedToken
// object {"content": ...}.
func tokenName(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var obj struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "", err
	}
	return obj.Content, nil
}

// SaveDir writes vocab.txt and a tokenizer_config.json that Hugging Face's
// BertTokenizer (and LoadDir) read back with the same settings.
func (t *Tokenizer) SaveDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save tokenizer: %w", err)
	}
	if err := t.vocab.Save(filepath.Join(dir, "vocab.txt")); err != nil {
		return fmt.Errorf("save tokenizer: %w", err)
	}
	b := t.cfg.Basic
	cfg := map[string]any{
		"tokenizer_class":        "BertTokenizer",
		"do_lower_case":          b.Lowercase,
		"strip_accents":          b.StripAccents,
		"tokenize_chinese_chars": b.SplitCJK,
		"model_max_length":       t.cfg.MaxLen,
		"cls_token":              CLS, "sep_token": SEP, "pad_token": PAD, "mask_token": MASK, "unk_token": UNK,
	}
	raw, _ := json.MarshalIndent(cfg, "", "  ")
	if err := atomicfile.WriteBytes(filepath.Join(dir, "tokenizer_config.json"), append(raw, '\n')); err != nil {
		return fmt.Errorf("save tokenizer: %w", err)
	}
	return nil
}

// Metadata describes the tokenizer as JSON for an exported model's
// "sslzoo.tokenizer" property, so that another stack can check it holds the
// same vocabulary (by sha256) and settings.
func (t *Tokenizer) Metadata() string {
	b := t.cfg.Basic
	m := map[string]any{
		"type":               "bert-wordpiece",
		"vocab_sha256":       t.vocab.SHA256(),
		"vocab_size":         t.vocab.Size(),
		"lowercase":          b.Lowercase,
		"strip_accents":      b.StripAccents,
		"split_cjk":          b.SplitCJK,
		"max_len":            t.cfg.MaxLen,
		"max_chars_per_word": t.cfg.MaxCharsPerWord,
		"specials":           map[string]int{CLS: t.sp.CLS, SEP: t.sp.SEP, PAD: t.sp.PAD, MASK: t.sp.MASK, UNK: t.sp.UNK},
	}
	raw, _ := json.Marshal(m)
	return string(raw)
}
