package text

import (
	"flag"
	"os"
	"reflect"
	"strings"
	"testing"
)

// The corpus of Hugging Face's WordPiece/BPE course chapters, with merges
// worked out by hand (see the comments).
func tinyTrainer(score Score, size int) *Trainer {
	tr := NewTrainer(TrainConfig{VocabSize: size, Score: score, MinFrequency: 1})
	for w, n := range map[string]int64{"hug": 10, "pug": 5, "pun": 12, "bun": 4, "hugs": 5} {
		tr.AddWord(w, n)
	}
	return tr
}

func TestTrainerLikelihoodByHand(t *testing.T) {
	// Counts h15 p17 b4 ##u36 ##g20 ##n16 ##s5. Every pair scores 1/36
	// except (##g,##s) = 5/(20*5) = 1/20, so ##gs first. Then all pairs tie
	// at 1/36 and the count breaks the tie: (p,##u)=17 gives "pu". Then
	// (h,##u), (##u,##gs) and (b,##u) tie at 1/19 and h##u has the larger
	// count: "hu".
	v, err := tinyTrainer(Likelihood, 15).Train()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
		"##g", "##n", "##s", "##u", "b", "h", "p", "##gs", "pu", "hu"}
	if got := v.Tokens(); !reflect.DeepEqual(got, want) {
		t.Errorf("likelihood vocab\n got %q\nwant %q", got, want)
	}
}

func TestTrainerFrequencyByHand(t *testing.T) {
	// BPE merges on this corpus: u+g (20), then u+n (16), then h+ug (15).
	v, err := tinyTrainer(Frequency, 15).Train()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := v.Tokens()[12:], []string{"##ug", "##un", "hug"}; !reflect.DeepEqual(got, want) {
		t.Errorf("frequency merges %q, want %q", got, want)
	}
}

func TestTrainerStopsAndErrors(t *testing.T) {
	// With MinFrequency above every pair count training stops at the
	// alphabet.
	tr := tinyTrainer(Likelihood, 100)
	tr.cfg.MinFrequency = 100
	v, err := tr.Train()
	if err != nil || v.Size() != 12 {
		t.Errorf("size %d err %v, want alphabet only (12)", v.Size(), err)
	}
	// An alphabet larger than the room keeps the most frequent symbols.
	v, err = tinyTrainer(Likelihood, 8).Train()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := v.Tokens()[5:], []string{"##g", "##u", "p"}; !reflect.DeepEqual(got, want) {
		t.Errorf("trimmed alphabet %q, want %q", got, want)
	}
	if _, err := NewTrainer(TrainConfig{VocabSize: 100}).Train(); err == nil {
		t.Error("empty corpus accepted")
	}
	if _, err := tinyTrainer(Likelihood, 5).Train(); err == nil {
		t.Error("VocabSize 5 accepted")
	}
}

// TestTrainerOpticks trains on Newton's Opticks and checks determinism and
// that every training word tokenizes without [UNK] in fewer pieces than
// characters.
func TestTrainerOpticks(t *testing.T) {
	raw, err := os.ReadFile(OpticksPath())
	if err != nil {
		t.Skipf("Opticks not in GOROOT: %v", err)
	}
	text := string(raw)
	if testing.Short() {
		text = text[:len(text)/4]
	}
	train := func() *Vocab {
		tr := NewTrainer(TrainConfig{VocabSize: 600, Basic: DefaultConfig().Basic})
		for _, line := range strings.Split(text, "\n") {
			tr.Add(line)
		}
		v, err := tr.Train()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	v1, v2 := train(), train()
	if v1.SHA256() != v2.SHA256() {
		t.Fatal("training is not deterministic")
	}
	if v1.Size() != 600 {
		t.Errorf("vocab size %d, want 600", v1.Size())
	}
	tok, err := New(v1, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	words := DefaultConfig().Basic.Split(text)
	pieces, chars := 0, 0
	for _, w := range words {
		toks, _ := tok.Tokenize(w)
		for _, p := range toks {
			if p == UNK {
				t.Fatalf("training word %q tokenizes to %q", w, toks)
			}
		}
		pieces += len(toks)
		chars += len([]rune(w))
	}
	if float64(pieces) > 0.6*float64(chars) {
		t.Errorf("%d pieces for %d characters: merges barely compress", pieces, chars)
	}
	t.Logf("%d words, %d chars, %d pieces", len(words), chars, pieces)
}

var update = flag.Bool("update", false, "rewrite testdata fixtures made by our own code")

// TestOpticksVocabFixture retrains testdata/vocab_opticks.txt (1000 tokens
// from the whole of Opticks) and requires the same bytes: a regression test
// of the trainer, and the vocabulary gen_tokenizer_golden.mjs tokenizes
// Opticks with. Run with -update to rewrite it.
func TestOpticksVocabFixture(t *testing.T) {
	raw, err := os.ReadFile(OpticksPath())
	if err != nil {
		t.Skipf("Opticks not in GOROOT: %v", err)
	}
	tr := NewTrainer(TrainConfig{VocabSize: 1000, Basic: DefaultConfig().Basic})
	tr.Add(string(raw))
	v, err := tr.Train()
	if err != nil {
		t.Fatal(err)
	}
	const path = "testdata/vocab_opticks.txt"
	if *update {
		if err := v.Save(path); err != nil {
			t.Fatal(err)
		}
	}
	want, err := LoadVocab(path)
	if err != nil {
		t.Fatal(err)
	}
	if v.SHA256() != want.SHA256() {
		t.Errorf("trained vocab differs from %s (run with -update if the change is intended)", path)
	}
}
