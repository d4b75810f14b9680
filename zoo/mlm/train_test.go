package mlm

import (
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/data/text"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/zoo"
)

func opticksTokenizer(t *testing.T) *text.Tokenizer {
	t.Helper()
	tok, err := text.Load(filepath.Join("..", "..", "data", "text", "testdata", "vocab_opticks.txt"), text.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func smallRun(dir string) TrainConfig {
	return TrainConfig{Model: zoo.BERTConfig{Hidden: 16, Layers: 1, Heads: 2, MaxPositions: 64},
		SeqLen: 32, Batch: 8, MaxSteps: 6, Epochs: 1, LR: 2e-3, Seed: 3, OutDir: dir, HeldOut: 0.1}
}

func TestTrainWritesLoadableModel(t *testing.T) {
	doc, err := text.LoadOpticks()
	if err != nil {
		t.Skipf("Opticks not available: %v", err)
	}
	doc.Sentences = doc.Sentences[:min(len(doc.Sentences), 300)]
	tok := opticksTokenizer(t)
	dir := t.TempDir()
	var steps int
	var evals int
	res, err := Train(context.Background(), smallRun(dir), tok, []text.Document{doc}, func(p Progress) {
		if p.Step > 0 {
			steps++
		}
		if p.Eval != nil {
			evals++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 6 || steps != 6 || evals < 1 || res.HeldOutSeqs == 0 || res.TrainSeqs == 0 {
		t.Fatalf("result %+v, %d progress steps, %d evaluations", res, steps, evals)
	}
	if res.Unigram.Masked != res.Final.Masked || res.Initial.Masked != res.Final.Masked || res.Final.Masked == 0 {
		t.Errorf("evaluations scored different positions: %+v %+v %+v", res.Initial, res.Final, res.Unigram)
	}
	if !(res.Final.Loss < res.Initial.Loss) {
		t.Errorf("held-out loss %g -> %g", res.Initial.Loss, res.Final.Loss)
	}
	h, err := zoo.LoadHFBERT(dir)
	if err != nil {
		t.Fatal(err)
	}
	if h.Model.MLM == nil || h.Model.Config.Hidden != 16 || h.Tokenizer.Vocab().SHA256() != tok.Vocab().SHA256() {
		t.Errorf("saved model %+v", h.Model.Config)
	}

	// Resuming a finished run does nothing more; a longer run continues.
	cfg := smallRun(dir)
	cfg.Resume, cfg.MaxSteps = true, 8
	res2, err := Train(context.Background(), cfg, tok, []text.Document{doc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Steps != 8 {
		t.Errorf("resumed run ended at step %d", res2.Steps)
	}
}

func TestTrainCancelSavesCheckpoint(t *testing.T) {
	doc, err := text.LoadOpticks()
	if err != nil {
		t.Skipf("Opticks not available: %v", err)
	}
	doc.Sentences = doc.Sentences[:min(len(doc.Sentences), 300)]
	tok := opticksTokenizer(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	_, err = Train(ctx, smallRun(dir), tok, []text.Document{doc}, func(p Progress) {
		if p.Step == 2 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	m, _ := zoo.NewBERT(zoo.BERTConfig{VocabSize: tok.Vocab().Size(), Hidden: 16, Layers: 1, Heads: 2, MaxPositions: 64, MLMHead: true}, rand.New(rand.NewPCG(9, 9)))
	tr, err := NewTrainer(DefaultConfig(6), m, tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	step, _, err := nn.LoadCheckpoint(filepath.Join(dir, checkpointName), tr, tr.opt, nil)
	if err != nil || step != 2 {
		t.Errorf("checkpoint at step %d: %v", step, err)
	}
}

func TestTrainBadInput(t *testing.T) {
	tok := opticksTokenizer(t)
	dir := t.TempDir()
	empty := []text.Document{{Name: "empty"}}
	if _, err := Train(context.Background(), smallRun(dir), tok, empty, nil); err == nil || !errors.Is(err, text.ErrEmpty) {
		t.Errorf("empty corpus: %v", err)
	}
	long := smallRun(dir)
	long.SeqLen = 128
	if _, err := Train(context.Background(), long, tok, empty, nil); err == nil || !strings.Contains(err.Error(), "position table") {
		t.Errorf("seq-len over the positions: %v", err)
	}
	// A sentence longer than the sequence is truncated with a warning.
	words := strings.Repeat("light is refracted by the prism ", 20)
	doc := text.Document{Name: "long", Sentences: []string{words, "the prism.", words}}
	cfg := smallRun(dir)
	cfg.HeldOut = -1
	var warned string
	if _, err := Train(context.Background(), cfg, tok, []text.Document{doc}, func(p Progress) {
		if p.Warning != "" {
			warned = p.Warning
		}
	}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(warned, "truncated") {
		t.Errorf("no truncation warning (got %q)", warned)
	}
}
