package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sslzoo/sslzoo"

	"github.com/sslzoo/sslzoo/onnxrt"
)

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

// textInputs tokenizes the texts in Go for a model with int64 input_ids
// and attention_mask [batch, seq]: [CLS] text [SEP], right-padded with
// [PAD] (mask 0) to the exported length. Longer texts are truncated to it,
// with one warning on warn.
func textInputs(eng onnxrt.Engine, o embedOptions, warn io.Writer) ([]*onnxrt.Tensor, []string, error) {
	ins := eng.Inputs()
	if len(ins) != 2 || ins[0].DType != onnxrt.Int64 || ins[1].DType != onnxrt.Int64 || len(ins[0].Shape) != 2 {
		return nil, nil, usagef("sslzoo embed: --text needs a text model (int64 input_ids and attention_mask [batch, seq]); this one takes %v", ins)
	}
	seq := ins[0].Shape[1]
	if seq < 3 {
		return nil, nil, fmt.Errorf("the model's sequence axis %v is not a fixed length of at least 3", ins[0])
	}
	texts, err := readTexts(o)
	if err != nil {
		return nil, nil, err
	}
	tok, err := sslzoo.TextTokenizer(o.Model, eng.Metadata(), o.Vocab, seq)
	if err != nil {
		return nil, nil, err
	}
	ids, mask, cut, err := sslzoo.TokenTensors(tok, texts, seq)
	if err != nil {
		return nil, nil, err
	}
	if cut > 0 {
		fmt.Fprintf(warn, "sslzoo embed: warning: %d of %d texts were longer than the model's %d tokens and were truncated\n", cut, len(texts), seq)
	}
	return []*onnxrt.Tensor{ids, mask}, texts, nil
}
