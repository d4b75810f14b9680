package mlm

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/data/text"
	"github.com/sslzoo/sslzoo/zoo"
)

// TestSequencesFileReproducesRun trains a small run, reads back the
// sequences file it wrote, checks the sequences are the packing's exact
// train/held-out split, and checks that EvaluateRun on the saved model
// reproduces the run's own final held-out scores and unigram baseline.
func TestSequencesFileReproducesRun(t *testing.T) {
	doc, err := text.LoadOpticks()
	if err != nil {
		t.Skipf("Opticks not available: %v", err)
	}
	doc.Sentences = doc.Sentences[:min(len(doc.Sentences), 300)]
	docs := []text.Document{doc}
	tok := opticksTokenizer(t)
	dir := t.TempDir()
	cfg := smallRun(dir)
	cfg.WholeWord = true
	res, err := Train(context.Background(), cfg, tok, docs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.TrainSequences != 6*cfg.Batch || !(res.TrainSeconds > 0) {
		t.Errorf("training time %g s for %d sequences, want 6 batches of %d", res.TrainSeconds, res.TrainSequences, cfg.Batch)
	}

	s, err := ReadSequences(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := s.Recipe
	if r.SeqLen != 32 || r.Batch != 8 || r.TotalSteps != 6 || r.Seed != 3 || r.LR != 2e-3 || r.HeldOutEvery != 10 ||
		r.EvalBatch != 8 || r.EvalSeed != 10 || !r.Mask.WholeWord || r.Mask.Prob != 0.15 || r.Beta2 != 0.999 ||
		r.StepsPerEpoch != (res.TrainSeqs+7)/8 || r.VocabSHA256 != tok.Vocab().SHA256() || r.MaskID != tok.Specials().MASK ||
		len(r.SpecialIDs) != 5 {
		t.Errorf("recipe %+v", r)
	}
	seqs, _, err := text.Pack(tok, docs, text.PackConfig{SeqLen: 32})
	if err != nil {
		t.Fatal(err)
	}
	train, held, _ := splitHeldOut(seqs, 0.1)
	same := func(a, b []text.Sequence) bool {
		return slices.EqualFunc(a, b, func(x, y text.Sequence) bool { return x.Doc == y.Doc && slices.Equal(x.IDs, y.IDs) })
	}
	if !same(s.Train, train) || !same(s.HeldOut, held) {
		t.Fatalf("read back %d train and %d held-out sequences that differ from the packing's %d and %d",
			len(s.Train), len(s.HeldOut), len(train), len(held))
	}

	h, err := zoo.LoadHFBERT(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := EvaluateRun(h.Model, h.Tokenizer, s)
	if err != nil {
		t.Fatal(err)
	}
	close := func(a, b EvalResult) bool {
		return a.Masked == b.Masked && a.Accuracy == b.Accuracy && math.Abs(a.Loss-b.Loss) <= 1e-9*math.Abs(b.Loss)
	}
	if got.HeldOut != len(held) || !close(got.Model, res.Final) || !close(got.Unigram, res.Unigram) {
		t.Errorf("EvaluateRun %+v, the run's final %+v and unigram %+v", got, res.Final, res.Unigram)
	}
	// A fresh model scores worse than the trained one on the same masks.
	fresh, _ := zoo.NewBERT(h.Model.Config, rand.New(rand.NewPCG(5, 5)))
	if f, err := EvaluateRun(fresh, h.Tokenizer, s); err != nil || f.Model.Masked != got.Model.Masked || !(f.Model.Loss > got.Model.Loss) {
		t.Errorf("untrained model: %+v, %v (trained loss %g)", f.Model, err, got.Model.Loss)
	}

	// Another vocabulary, a model without the MLM head, and a file from
	// another format are refused.
	other, err := zoo.LoadHFBERT(filepath.Join("..", "testdata", "hf_bert_mlm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EvaluateRun(other.Model, other.Tokenizer, s); err == nil || !strings.Contains(err.Error(), "vocabulary") {
		t.Errorf("other vocabulary: %v", err)
	}
	enc := h.Model.Config
	enc.MLMHead = false
	noHead, _ := zoo.NewBERT(enc, rand.New(rand.NewPCG(5, 5)))
	if _, err := EvaluateRun(noHead, h.Tokenizer, s); err == nil || !strings.Contains(err.Error(), "MLM head") {
		t.Errorf("model without MLM head: %v", err)
	}
	bad := *s
	bad.Recipe.Format = "sslzoo-mlm-sequences/0"
	p := filepath.Join(t.TempDir(), SequencesName)
	if err := WriteSequences(p, &bad); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSequences(p); err == nil || !strings.Contains(err.Error(), "format") {
		t.Errorf("old format: %v", err)
	}
	if _, err := ReadSequences(filepath.Join(dir, "model.safetensors")); err == nil || !strings.Contains(err.Error(), "recipe") {
		t.Errorf("model file as sequences: %v", err)
	}
}
