package sslzoo_test

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo"
	"github.com/sslzoo/sslzoo/conformance"
	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/weights/ckptimport"
	"github.com/sslzoo/sslzoo/zoo/load"
)

// A Hugging Face BERT folder imports into one weights file that carries
// its tokenizer; exported, that file alone embeds texts, and the embeddings
// are the Go forward's on the tokenizer's ids (the tokenizer itself is held
// to Hugging Face's by data/text's golden test).
func TestTextEncoder(t *testing.T) {
	dir := t.TempDir()
	res, err := ckptimport.Import(filepath.Join("zoo", "testdata", "hf_bert_mlm"), "hf-bert", "")
	if err != nil {
		t.Fatal(err)
	}
	weights := filepath.Join(dir, "bert.safetensors")
	if err := ckptimport.Write(res, weights); err != nil {
		t.Fatal(err)
	}
	const seq = 12
	model := filepath.Join(dir, "bert.onnx")
	if err := sslzoo.ExportWeights(weights, model, sslzoo.ExportOptions{Seq: seq}); err != nil {
		t.Fatal(err)
	}
	enc, err := sslzoo.Open(model, &sslzoo.Options{Engine: onnxrt.EngineGo})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	if enc.Modality() != sslzoo.ModalityText || enc.SeqLen() != seq {
		t.Fatalf("modality %s, seq %d", enc.Modality(), enc.SeqLen())
	}
	texts := []string{"The light of the Sun.", "", strings.Repeat("light and colour ", 10)}
	got, err := enc.EmbedTexts(texts)
	if err != nil {
		t.Fatal(err)
	}

	lb, err := load.File(weights, load.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := conformance.NewBackbone("bert", lb.Model, conformance.BackboneOptions{Seq: seq})
	if err != nil {
		t.Fatal(err)
	}
	ids, mask, cut, err := sslzoo.TokenTensors(enc.Tokenizer(), texts, seq)
	if err != nil {
		t.Fatal(err)
	}
	if cut != 1 {
		t.Errorf("%d texts truncated, want 1", cut)
	}
	want, err := b.GoForward([]*onnxrt.Tensor{ids, mask})
	if err != nil {
		t.Fatal(err)
	}
	flat, _ := want[0].Float32s()
	d := len(flat) / len(texts)
	for i, row := range got {
		for j, v := range row {
			if math.Abs(float64(v-flat[i*d+j])) > 1e-4 {
				t.Fatalf("text %d, dim %d: %g, Go forward %g", i, j, v, flat[i*d+j])
			}
		}
	}
	if _, err := enc.EmbedTokens([][]int64{{2, 99999}}); err == nil || !strings.Contains(err.Error(), "outside the vocabulary") {
		t.Errorf("bad id: %v", err)
	}
	if _, err := enc.EmbedTensor(make([]float32, 4), 1); err == nil || !strings.Contains(err.Error(), "text model") {
		t.Errorf("tensor into a text model: %v", err)
	}
}
