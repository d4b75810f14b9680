package zoo

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sslzoo/sslzoo/data/text"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/weights"
)

// HFBERTConfig is the part of a Hugging Face BERT config.json the importer
// reads. Pointers tell a missing key from a zero value.
type HFBERTConfig struct {
	ModelType             string   `json:"model_type"`
	Architectures         []string `json:"architectures"`
	VocabSize             *int     `json:"vocab_size"`
	HiddenSize            *int     `json:"hidden_size"`
	NumHiddenLayers       *int     `json:"num_hidden_layers"`
	NumAttentionHeads     *int     `json:"num_attention_heads"`
	IntermediateSize      *int     `json:"intermediate_size"`
	MaxPositionEmbeddings *int     `json:"max_position_embeddings"`
	TypeVocabSize         *int     `json:"type_vocab_size"`
	PadTokenID            *int     `json:"pad_token_id"`
	LayerNormEps          *float64 `json:"layer_norm_eps"`
	HiddenAct             string   `json:"hidden_act"`
	HiddenDropoutProb     *float64 `json:"hidden_dropout_prob"`
	AttentionDropoutProb  *float64 `json:"attention_probs_dropout_prob"`
	PositionEmbeddingType string   `json:"position_embedding_type"`
	IsDecoder             bool     `json:"is_decoder"`
	AddCrossAttention     bool     `json:"add_cross_attention"`
	TieWordEmbeddings     *bool    `json:"tie_word_embeddings"`
}

// BERTConfig converts the Hugging Face config, applying BertConfig's
// defaults for missing keys, and refuses variants sslzoo's BERT does not
// compute (other activations, relative position embeddings, decoders).
func (h HFBERTConfig) BERTConfig() (BERTConfig, error) {
	if h.ModelType != "" && h.ModelType != "bert" {
		return BERTConfig{}, fmt.Errorf("model_type %q is not bert", h.ModelType)
	}
	switch h.HiddenAct {
	case "", "gelu":
	default:
		return BERTConfig{}, fmt.Errorf("hidden_act %q not supported (sslzoo's BERT uses the exact GELU, \"gelu\")", h.HiddenAct)
	}
	if h.PositionEmbeddingType != "" && h.PositionEmbeddingType != "absolute" {
		return BERTConfig{}, fmt.Errorf("position_embedding_type %q not supported (only \"absolute\")", h.PositionEmbeddingType)
	}
	if h.IsDecoder || h.AddCrossAttention {
		return BERTConfig{}, fmt.Errorf("decoder BERT (is_decoder / add_cross_attention) not supported")
	}
	if h.TieWordEmbeddings != nil && !*h.TieWordEmbeddings {
		return BERTConfig{}, fmt.Errorf("tie_word_embeddings false not supported: sslzoo's MLM head shares the word embeddings")
	}
	intOr := func(p *int, d int) int {
		if p == nil {
			return d
		}
		return *p
	}
	floatOr := func(p *float64, d float64) float64 {
		if p == nil {
			return d
		}
		return *p
	}
	c := BERTConfig{
		VocabSize:        intOr(h.VocabSize, 30522),
		Hidden:           intOr(h.HiddenSize, 768),
		Layers:           intOr(h.NumHiddenLayers, 12),
		Heads:            intOr(h.NumAttentionHeads, 12),
		Intermediate:     intOr(h.IntermediateSize, 3072),
		MaxPositions:     intOr(h.MaxPositionEmbeddings, 512),
		TypeVocabSize:    intOr(h.TypeVocabSize, 2),
		PadTokenID:       intOr(h.PadTokenID, 0),
		Eps:              float32(floatOr(h.LayerNormEps, 1e-12)),
		HiddenDropout:    float32(floatOr(h.HiddenDropoutProb, 0.1)),
		AttentionDropout: float32(floatOr(h.AttentionDropoutProb, 0.1)),
	}
	// NewBERT validates the sizes.
	return c, nil
}

// HFBERT is a Hugging Face BERT checkpoint loaded into sslzoo.
type HFBERT struct {
	Model     *BERT
	Tokenizer *text.Tokenizer
	HFConfig  HFBERTConfig
	// Ignored lists checkpoint tensors that have no place in sslzoo's BERT
	// and were skipped: the legacy position_ids buffer, the tied decoder
	// copies, and heads of other tasks (next-sentence prediction,
	// classifiers).
	Ignored []string
}

// LoadHFBERT loads a Hugging Face BERT folder: config.json,
// model.safetensors and the tokenizer files (vocab.txt, and
// tokenizer_config.json when present). BertModel files (no prefix) and
// files of the task models (BertForMaskedLM, BertForPreTraining, ...: the
// encoder under "bert.") both load. The pooler is built when the file has
// one, and the MLM head when the file has cls.predictions. Legacy
// LayerNorm "gamma"/"beta" names are read as weight/bias, as transformers
// does. Weights stored as F16 or BF16 are widened to float32. The model is
// returned in evaluation mode (no dropout).
func LoadHFBERT(dir string) (*HFBERT, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("hf bert %s: %w", dir, err)
	}
	var hc HFBERTConfig
	if err := json.Unmarshal(raw, &hc); err != nil {
		return nil, fmt.Errorf("hf bert %s: config.json: %w", dir, err)
	}
	cfg, err := hc.BERTConfig()
	if err != nil {
		return nil, fmt.Errorf("hf bert %s: config.json: %w", dir, err)
	}
	wpath := filepath.Join(dir, "model.safetensors")
	f, err := weights.Read(wpath)
	if errors.Is(err, os.ErrNotExist) {
		if _, binErr := os.Stat(filepath.Join(dir, "pytorch_model.bin")); binErr == nil {
			return nil, fmt.Errorf("hf bert %s: only pytorch_model.bin found; sslzoo reads model.safetensors (convert the pickle to safetensors first)", dir)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("hf bert %s: %w", dir, err)
	}
	tensors, ignored, hasPooler, hasMLM, err := mapHFBERTNames(f.Tensors)
	if err != nil {
		return nil, fmt.Errorf("hf bert %s: %w", wpath, err)
	}
	cfg.Pooler, cfg.MLMHead = hasPooler, hasMLM
	m, err := NewBERT(cfg, rand.New(rand.NewPCG(0, 0)))
	if err != nil {
		return nil, fmt.Errorf("hf bert %s: config.json: %w", dir, err)
	}
	if err := nn.LoadState(m, tensors, true); err != nil {
		return nil, fmt.Errorf("hf bert %s: %w", wpath, err)
	}
	m.SetTraining(false)
	tok, err := text.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("hf bert %s: %w", dir, err)
	}
	if v := tok.Vocab().Size(); v != cfg.VocabSize {
		return nil, fmt.Errorf("hf bert %s: vocab.txt has %d tokens but config.json vocab_size is %d", dir, v, cfg.VocabSize)
	}
	return &HFBERT{Model: m, Tokenizer: tok, HFConfig: hc, Ignored: ignored}, nil
}

// HFBERTState renames a Hugging Face BERT state_dict (BertModel, or a task
// model such as BertForPreTraining with the encoder under "bert.") to
// sslzoo's BERT names exactly as LoadHFBERT does, for importers that read
// the tensors from elsewhere (a pytorch_model.bin). It reports the
// checkpoint names it left out and whether the pooler and the MLM head
// are present; with the MLM head the encoder stays under "bert.".
func HFBERTState(in map[string]*weights.Tensor) (state map[string]*weights.Tensor, ignored []string, pooler, mlm bool, err error) {
	return mapHFBERTNames(in)
}

// mapHFBERTNames renames a Hugging Face BERT state to sslzoo's names: the
// encoder under "bert." when the MLM head is present and without prefix
// otherwise, as BERT.CollectState lists them.
func mapHFBERTNames(in map[string]*weights.Tensor) (out map[string]*weights.Tensor, ignored []string, pooler, mlm bool, err error) {
	prefixed := false
	for k := range in {
		if strings.HasPrefix(k, "bert.embeddings.") {
			prefixed = true
		}
	}
	enc := map[string]*weights.Tensor{}
	head := map[string]*weights.Tensor{}
	for k, v := range in {
		name := k
		// transformers renames TF-era LayerNorm parameters on load.
		if s, ok := strings.CutSuffix(name, ".gamma"); ok {
			name = s + ".weight"
		} else if s, ok := strings.CutSuffix(name, ".beta"); ok {
			name = s + ".bias"
		}
		switch {
		case strings.HasPrefix(name, "cls.predictions."):
			head[strings.TrimPrefix(name, "cls.predictions.")] = v
		case prefixed && strings.HasPrefix(name, "bert."):
			enc[strings.TrimPrefix(name, "bert.")] = v
		case !prefixed && (strings.HasPrefix(name, "embeddings.") || strings.HasPrefix(name, "encoder.") || strings.HasPrefix(name, "pooler.")):
			enc[name] = v
		default:
			ignored = append(ignored, k)
		}
	}
	if _, ok := enc["embeddings.word_embeddings.weight"]; !ok {
		return nil, nil, false, false, fmt.Errorf("no embeddings.word_embeddings.weight (with or without \"bert.\"): not a BERT checkpoint")
	}
	if _, ok := enc["embeddings.position_ids"]; ok {
		delete(enc, "embeddings.position_ids")
		ignored = append(ignored, prefixIf(prefixed, "embeddings.position_ids"))
	}
	// Tied copies: the decoder weight is the word embedding matrix and the
	// decoder bias is cls.predictions.bias; check rather than trust them.
	for _, tied := range []struct{ copy, of string }{{"decoder.weight", "word"}, {"decoder.bias", "bias"}} {
		t, ok := head[tied.copy]
		if !ok {
			continue
		}
		ref := head["bias"]
		if tied.of == "word" {
			ref = enc["embeddings.word_embeddings.weight"]
		}
		if ref == nil || !sameValues(t, ref) {
			return nil, nil, false, false, fmt.Errorf("cls.predictions.%s differs from the tensor it should be tied to; untied MLM decoders are not supported", tied.copy)
		}
		delete(head, tied.copy)
		ignored = append(ignored, "cls.predictions."+tied.copy)
	}
	_, pooler = enc["pooler.dense.weight"]
	mlm = len(head) > 0
	out = map[string]*weights.Tensor{}
	for k, v := range enc {
		if mlm {
			k = "bert." + k
		}
		out[k] = v
	}
	for k, v := range head {
		out["cls.predictions."+k] = v
	}
	slices.Sort(ignored)
	return out, ignored, pooler, mlm, nil
}

func prefixIf(on bool, name string) string {
	if on {
		return "bert." + name
	}
	return name
}

// sameValues reports whether two stored tensors hold the same float values.
func sameValues(a, b *weights.Tensor) bool {
	x, err1 := a.Float32()
	y, err2 := b.Float32()
	return err1 == nil && err2 == nil && slices.Equal(x.Shape, y.Shape) && slices.Equal(x.Data, y.Data)
}

// SaveHFBERT writes m and tok as a Hugging Face BERT folder that
// LoadHFBERT, and transformers' BertModel / BertForMaskedLM
// from_pretrained, read back: config.json, model.safetensors (sslzoo's
// state names are Hugging Face's; the tied decoder is left out as
// save_pretrained does) and the tokenizer files. meta is stored in the
// safetensors header next to {"format": "pt"}.
func SaveHFBERT(dir string, m *BERT, tok *text.Tokenizer, meta map[string]string) error {
	c := m.Config
	if tok != nil && tok.Vocab().Size() != c.VocabSize {
		return fmt.Errorf("save hf bert %s: tokenizer has %d tokens, model %d", dir, tok.Vocab().Size(), c.VocabSize)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save hf bert: %w", err)
	}
	arch := "BertModel"
	if m.MLM != nil {
		arch = "BertForMaskedLM"
	}
	cfg := map[string]any{
		"architectures":                []string{arch},
		"attention_probs_dropout_prob": c.AttentionDropout,
		"classifier_dropout":           nil,
		"hidden_act":                   "gelu",
		"hidden_dropout_prob":          c.HiddenDropout,
		"hidden_size":                  c.Hidden,
		"initializer_range":            0.02,
		"intermediate_size":            c.Intermediate,
		"layer_norm_eps":               c.Eps,
		"max_position_embeddings":      c.MaxPositions,
		"model_type":                   "bert",
		"num_attention_heads":          c.Heads,
		"num_hidden_layers":            c.Layers,
		"pad_token_id":                 c.PadTokenID,
		"position_embedding_type":      "absolute",
		"torch_dtype":                  "float32",
		"type_vocab_size":              c.TypeVocabSize,
		"use_cache":                    true,
		"vocab_size":                   c.VocabSize,
	}
	raw, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("save hf bert: %w", err)
	}
	md := map[string]string{"format": "pt"}
	for k, v := range meta {
		md[k] = v
	}
	if err := weights.Write(filepath.Join(dir, "model.safetensors"), nn.StateTensors(m), md); err != nil {
		return fmt.Errorf("save hf bert: %w", err)
	}
	if err := weights.WriteFileAtomic(filepath.Join(dir, "config.json"), append(raw, '\n')); err != nil {
		return fmt.Errorf("save hf bert: %w", err)
	}
	if tok != nil {
		if err := tok.SaveDir(dir); err != nil {
			return fmt.Errorf("save hf bert: %w", err)
		}
	}
	return nil
}
