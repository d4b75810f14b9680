package sslzoo

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sslzoo/sslzoo/data/text"
	"github.com/sslzoo/sslzoo/onnxrt"
)

// Modalities of an Encoder.
const (
	ModalityImage = "image"
	ModalityText  = "text"
)

// textModel is what an Encoder needs for a model that takes token ids.
type textModel struct {
	tok *text.Tokenizer
	seq int // the model's fixed sequence length
	pad int64
}

// isTextModel reports whether a model takes int64 input_ids and
// attention_mask [batch, seq], as exported text backbones do.
func isTextModel(in []onnxrt.ValueInfo) bool {
	return len(in) == 2 && in[0].DType == onnxrt.Int64 && in[1].DType == onnxrt.Int64 && len(in[0].Shape) == 2
}

// TextTokenizer is the tokenizer of an exported text model, truncating at
// seq tokens. The vocabulary is vocab when given (a vocab.txt, or a
// Hugging Face tokenizer folder), else the one the model's metadata
// records, else vocab.txt beside the model file. A vocabulary that is not
// the one the model records (sha256, size) is refused.
func TextTokenizer(modelPath string, meta map[string]string, vocab string, seq int) (*text.Tokenizer, error) {
	var rec *text.Recorded
	if raw, ok := meta[text.MetaTokenizer]; ok {
		r, err := text.ParseRecorded(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", modelPath, err)
		}
		rec = &r
	}
	var tok *text.Tokenizer
	if vocab == "" {
		t, err := text.FromMetadata(meta)
		switch {
		case err == nil:
			tok = t
		case !errors.Is(err, text.ErrNoVocab):
			return nil, fmt.Errorf("%s: %w", modelPath, err)
		default:
			vocab = filepath.Join(filepath.Dir(modelPath), "vocab.txt")
			if _, err := os.Stat(vocab); err != nil {
				return nil, fmt.Errorf("%s records no vocabulary and there is no vocab.txt beside it: give the vocabulary (--vocab)", modelPath)
			}
		}
	}
	if tok == nil {
		t, err := loadVocab(vocab, rec)
		if err != nil {
			return nil, err
		}
		tok = t
	}
	if rec != nil {
		if err := rec.Check(tok.Vocab()); err != nil {
			return nil, fmt.Errorf("vocabulary %s for %s: %w", vocab, modelPath, err)
		}
	}
	if n := modelVocabSize(meta); n > 0 && tok.Vocab().Size() != n {
		return nil, fmt.Errorf("vocabulary %s has %d tokens but the model's vocabulary has %d", vocab, tok.Vocab().Size(), n)
	}
	cfg := tok.Config()
	cfg.MaxLen = seq
	return text.New(tok.Vocab(), cfg)
}

// loadVocab reads a vocab.txt or a tokenizer folder. The model's record,
// when there is one, sets the tokenizer's options; a folder without a
// record brings its own tokenizer_config.json.
func loadVocab(path string, rec *text.Recorded) (*text.Tokenizer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("vocabulary: %w", err)
	}
	if fi.IsDir() && rec == nil {
		return text.LoadDir(path)
	}
	if fi.IsDir() {
		path = filepath.Join(path, "vocab.txt")
	}
	v, err := text.LoadVocab(path)
	if err != nil {
		return nil, err
	}
	cfg := text.DefaultConfig()
	if rec != nil {
		cfg = rec.Config()
	}
	return text.New(v, cfg)
}

// TokenTensors tokenizes texts for a model with input_ids and
// attention_mask [batch, seq]: [CLS] text [SEP], truncated and right-padded
// with [PAD] (mask 0) to seq. It returns how many texts were truncated.
func TokenTensors(tok *text.Tokenizer, texts []string, seq int) (ids, mask *onnxrt.Tensor, truncated int, err error) {
	rows := make([][]int64, len(texts))
	for i, s := range texts {
		e, err := tok.Encode(s)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("text %d: %w", i+1, err)
		}
		if e.Truncated > 0 {
			truncated++
		}
		rows[i] = make([]int64, len(e.IDs))
		for j, id := range e.IDs {
			rows[i][j] = int64(id)
		}
	}
	ids, mask, err = padTokens(rows, seq, int64(tok.Specials().PAD))
	return ids, mask, truncated, err
}

// padTokens lays token rows out as [len(rows), seq] ids and mask tensors.
func padTokens(rows [][]int64, seq int, pad int64) (ids, mask *onnxrt.Tensor, err error) {
	id, m := make([]int64, len(rows)*seq), make([]int64, len(rows)*seq)
	for i, r := range rows {
		if len(r) > seq {
			return nil, nil, fmt.Errorf("text %d has %d tokens, more than the model's %d", i+1, len(r), seq)
		}
		for j := range seq {
			id[i*seq+j] = pad
			if j < len(r) {
				id[i*seq+j], m[i*seq+j] = r[j], 1
			}
		}
	}
	shape := []int{len(rows), seq}
	return onnxrt.NewTensor(shape, id), onnxrt.NewTensor(shape, m), nil
}

// Modality is ModalityImage or ModalityText.
func (e *Encoder) Modality() string {
	if e.text != nil {
		return ModalityText
	}
	return ModalityImage
}

// Tokenizer is a text model's tokenizer (nil for an image model).
func (e *Encoder) Tokenizer() *text.Tokenizer {
	if e.text == nil {
		return nil
	}
	return e.text.tok
}

// SeqLen is a text model's sequence length (0 for an image model).
func (e *Encoder) SeqLen() int {
	if e.text == nil {
		return 0
	}
	return e.text.seq
}

func (e *Encoder) needText() error {
	if e.text == nil {
		return fmt.Errorf("%s is an image model; embed images with it", e.path)
	}
	return nil
}

// Tokenize is the token ids of one text as the model reads them: [CLS]
// text [SEP], truncated to the model's length.
func (e *Encoder) Tokenize(s string) ([]int64, error) {
	if err := e.needText(); err != nil {
		return nil, err
	}
	enc, err := e.text.tok.Encode(s)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, len(enc.IDs))
	for i, id := range enc.IDs {
		ids[i] = int64(id)
	}
	return ids, nil
}

// EmbedTokens embeds token-id rows (from Tokenize), padding each to the
// model's length; the result has one embedding per row, in order.
func (e *Encoder) EmbedTokens(rows [][]int64) ([][]float32, error) {
	if err := e.needText(); err != nil {
		return nil, err
	}
	vocab := int64(e.text.tok.Vocab().Size())
	for i, r := range rows {
		for _, id := range r {
			if id < 0 || id >= vocab {
				return nil, fmt.Errorf("text %d: token id %d outside the vocabulary of %d", i+1, id, vocab)
			}
		}
	}
	var out [][]float32
	for lo := 0; lo < len(rows); lo += e.maxBatch() {
		hi := min(lo+e.maxBatch(), len(rows))
		ids, mask, err := padTokens(rows[lo:hi], e.text.seq, e.text.pad)
		if err != nil {
			return nil, err
		}
		res, err := e.engine.Run(ids, mask)
		if err != nil {
			return nil, err
		}
		got, err := e.rows(res, hi-lo)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

// EmbedTexts tokenizes and embeds texts, one embedding per text, in order.
func (e *Encoder) EmbedTexts(texts []string) ([][]float32, error) {
	rows, err := e.tokenizeAll(texts)
	if err != nil {
		return nil, err
	}
	return e.EmbedTokens(rows)
}

func (e *Encoder) tokenizeAll(texts []string) ([][]int64, error) {
	if err := e.needText(); err != nil {
		return nil, err
	}
	rows := make([][]int64, len(texts))
	for i, s := range texts {
		r, err := e.Tokenize(s)
		if err != nil {
			return nil, fmt.Errorf("text %d: %w", i+1, err)
		}
		rows[i] = r
	}
	return rows, nil
}

// TextTensors tokenizes texts as EmbedTexts does into the model's two
// inputs, input_ids and attention_mask ([len(texts), SeqLen]), for callers
// that run the engine themselves; tokens counts the real (unpadded) ones.
func (e *Encoder) TextTensors(texts []string) (ids, mask *onnxrt.Tensor, tokens int, err error) {
	rows, err := e.tokenizeAll(texts)
	if err != nil {
		return nil, nil, 0, err
	}
	for _, r := range rows {
		tokens += len(r)
	}
	ids, mask, err = padTokens(rows, e.text.seq, e.text.pad)
	return ids, mask, tokens, err
}

// newTextEncoder sets up an encoder for a text model.
func newTextEncoder(eng onnxrt.Engine, path, vocab string) (*Encoder, error) {
	in := eng.Inputs()
	seq := int(in[0].Shape[1])
	if seq < 3 {
		return nil, fmt.Errorf("%s: the sequence axis %v is not a fixed length of at least 3", path, in[0])
	}
	tok, err := TextTokenizer(path, eng.Metadata(), vocab, seq)
	if err != nil {
		return nil, err
	}
	e := &Encoder{engine: eng, path: path, text: &textModel{tok: tok, seq: seq, pad: int64(tok.Specials().PAD)}}
	e.pickOutput()
	return e, nil
}

// modelVocabSize reads vocab_size from a text model's sslzoo.text metadata
// (0 when absent).
func modelVocabSize(meta map[string]string) int {
	var t struct {
		VocabSize int `json:"vocab_size"`
	}
	if json.Unmarshal([]byte(meta["sslzoo.text"]), &t) != nil {
		return 0
	}
	return t.VocabSize
}
