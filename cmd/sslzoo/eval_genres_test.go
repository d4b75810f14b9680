package main

import (
	"encoding/json"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/data/text"
	"github.com/sslzoo/sslzoo/zoo"
)

// genreWords are three disjoint vocabularies, one per synthetic genre.
var genreWords = map[string][]string{
	"fruit": {"apple", "banana", "cherry", "grape", "lemon", "mango"},
	"metal": {"iron", "copper", "zinc", "tin", "lead", "nickel"},
	"water": {"river", "lake", "ocean", "sea", "pond", "brook"},
}

// tinyBERTFolder writes an untrained one-layer BERT over the genre words as
// a Hugging Face folder, as sslzoo train mlm leaves one.
func tinyBERTFolder(t *testing.T) string {
	t.Helper()
	tokens := []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."}
	for _, g := range []string{"fruit", "metal", "water"} {
		tokens = append(tokens, genreWords[g]...)
	}
	v, err := text.NewVocab(tokens)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := text.New(v, text.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	m, err := zoo.NewBERT(zoo.BERTConfig{VocabSize: v.Size(), Hidden: 16, Layers: 1, Heads: 2, MaxPositions: 32, MLMHead: true},
		rand.New(rand.NewPCG(3, 4)))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "bert")
	if err := zoo.SaveHFBERT(dir, m, tok, map[string]string{"sslzoo.method": "mlm"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeGenreCorpus writes docs[f] documents into folder f; document i of
// folder f has 6 sentences of 5 words drawn from content(f, i).
func writeGenreCorpus(t *testing.T, docs map[string]int, content func(folder string, i int) []string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "corpus")
	rng := rand.New(rand.NewPCG(5, 6))
	for _, f := range slices.Sorted(maps.Keys(docs)) {
		if err := os.MkdirAll(filepath.Join(root, f), 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range docs[f] {
			words := content(f, i)
			var b strings.Builder
			for range 6 {
				for range 5 {
					b.WriteString(words[rng.IntN(len(words))] + " ")
				}
				b.WriteString(".\n\n") // one paragraph, so one sentence, each
			}
			if err := os.WriteFile(filepath.Join(root, f, string(rune('a'+i))+".txt"), []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func genresJSON(t *testing.T, args ...string) map[string]any {
	t.Helper()
	code, out, errs := runCLI(append([]string{"eval", "genres", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("output %q is not JSON: %v", out, err)
	}
	return r
}

// TestEvalGenresSeparable: documents whose folders (classes) use disjoint
// words are classified by their neighbours almost perfectly, by the saved
// model and by a random-init one, with both pooling modes; the report
// carries the corpus counts and the chance rates.
func TestEvalGenresSeparable(t *testing.T) {
	model := tinyBERTFolder(t)
	corpus := writeGenreCorpus(t, map[string]int{"fruit": 5, "metal": 4, "water": 3}, func(f string, _ int) []string {
		return genreWords[f]
	})
	for _, pool := range []string{"mean", "cls"} {
		r := genresJSON(t, "--model", model, "--data", "text:"+corpus, "--pool", pool, "--k", "3", "--seq-len", "16",
			"--chunks", "2", "--batch", "5", "--random-init")
		if r["documents"] != 12.0 || r["genres"] != 3.0 || r["pool"] != pool || r["method"] != "mlm" {
			t.Fatalf("%s: report %v", pool, r)
		}
		if r["majority_genre"] != "fruit" || r["majority_rate"] != 5.0/12 || r["uniform_rate"] != 1.0/3 {
			t.Fatalf("%s: chance rates %v %v %v", pool, r["majority_genre"], r["majority_rate"], r["uniform_rate"])
		}
		// Sentences of 6 tokens: two fit a sequence of 16 ([CLS] and
		// [SEP] included), so each document gives 3 sequences of 14
		// tokens, of which the first 2 are used.
		if r["sequences"] != 24.0 || r["tokens"] != 24*14.0 {
			t.Fatalf("%s: %v sequences, %v tokens; want 24 of 14 tokens", pool, r["sequences"], r["tokens"])
		}
		ri, ok := r["random_init"].(map[string]any)
		if !ok {
			t.Fatalf("%s: no random_init in %v", pool, r)
		}
		// The [CLS] state of an untrained BERT carries less of the text
		// than the mean of all states, but still far more than the
		// majority rate (0.42).
		want := map[string]float64{"mean": 0.9, "cls": 0.75}[pool]
		for name, top1 := range map[string]any{"model": r["top1"], "random-init": ri["top1"]} {
			if v := top1.(float64); v < want {
				t.Errorf("%s %s: top-1 %v, want at least %v", pool, name, v, want)
			}
		}
	}
}

// TestEvalGenresContentBlind: when every folder holds the same mix of
// contents, a document's nearest neighbours are those of its content and
// its folder cannot be predicted: accuracy falls to chance or below.
func TestEvalGenresContentBlind(t *testing.T) {
	model := tinyBERTFolder(t)
	kinds := []string{"fruit", "metal", "water"}
	corpus := writeGenreCorpus(t, map[string]int{"p": 6, "q": 6}, func(_ string, i int) []string { return genreWords[kinds[i%3]] })
	r := genresJSON(t, "--model", model, "--data", "text:"+corpus, "--k", "1", "--seq-len", "16")
	if v := r["top1"].(float64); v > 0.5 {
		t.Fatalf("folders independent of content: top-1 %v, want at most chance 0.5", v)
	}
	if _, ok := r["random_init"]; ok {
		t.Fatal("random_init reported without --random-init")
	}
	// The same model imported into one weights file (which carries the
	// vocabulary) scores the same.
	weights := filepath.Join(t.TempDir(), "bert.safetensors")
	if code, _, errs := runCLI("import", "--format", "hf-bert", model, "--out", weights); code != 0 {
		t.Fatal(errs)
	}
	if w := genresJSON(t, "--model", weights, "--data", "text:"+corpus, "--k", "1", "--seq-len", "16"); w["top1"] != r["top1"] || w["method"] != "mlm" {
		t.Errorf("from the weights file: top-1 %v (method %v), from the folder %v", w["top1"], w["method"], r["top1"])
	}
	code, out, errs := runCLI("eval", "genres", "--model", model, "--data", "text:"+corpus, "--seq-len", "16", "--random-init")
	if code != 0 || !strings.Contains(out, "random-init (same config, seed 1): top-1") || !strings.Contains(out, "chance: majority class p 50.00%, uniform 50.00%") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

func TestEvalGenresErrors(t *testing.T) {
	t.Setenv("SSLZOO_CACHE", t.TempDir()) // a zoo name is pulled (from the binary)
	model := tinyBERTFolder(t)
	corpus := writeGenreCorpus(t, map[string]int{"fruit": 2, "metal": 2}, func(f string, _ int) []string { return genreWords[f] })
	dir := t.TempDir()
	flat := filepath.Join(dir, "flat")
	os.MkdirAll(flat, 0o755)
	os.WriteFile(filepath.Join(flat, "a.txt"), []byte("apple lemon.\n"), 0o644)
	one := filepath.Join(dir, "one")
	os.MkdirAll(filepath.Join(one, "fruit"), 0o755)
	for _, n := range []string{"a", "b", "c"} {
		os.WriteFile(filepath.Join(one, "fruit", n+".txt"), []byte("apple lemon.\n"), 0o644)
	}
	data := "text:" + corpus
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--data", data}, "--model is required"},
		{[]string{"--model", filepath.Join(dir, "missing"), "--data", data}, "no such file"},
		{[]string{"--model", "simclr-resnet18-fmnist", "--data", data}, "not a BERT"},
		{[]string{"--model", dir, "--data", data}, "has no config.json"},
		{[]string{"--model", model, "--data", data, "--pool", "max"}, `--pool "max": want mean or cls`},
		{[]string{"--model", model, "--data", data, "--k", "0"}, "must be positive"},
		{[]string{"--model", model, "--data", data, "--chunks", "0"}, "must be positive"},
		{[]string{"--model", model, "--data", data}, "--seq-len 128 exceeds the model's 32 positions"},
		{[]string{"--model", model, "--data", "opticks", "--seq-len", "16"}, "want brown or text:DIR"},
		{[]string{"--model", model, "--data", "text:" + filepath.Join(dir, "nope"), "--seq-len", "16"}, "no such file"},
		{[]string{"--model", model, "--data", "text:" + flat, "--seq-len", "16"}, "document a.txt has no class"},
		{[]string{"--model", model, "--data", "text:" + one, "--seq-len", "16"}, "3 documents in 1 classes"},
		{[]string{"--model", model, "--data", data, "stray"}, `unexpected argument "stray"`},
	}
	for _, c := range cases {
		code, out, errs := runCLI(append([]string{"eval", "genres"}, c.args...)...)
		if code == 0 || out != "" || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want one line containing %q", c.args, code, out, errs, c.want)
		}
	}
}

// TestEmbedDocumentsPadding: a document's embedding does not depend on the
// padding its sequences get in a batch: sequences of different lengths
// batched together give what they give one at a time, for both poolings.
func TestEmbedDocumentsPadding(t *testing.T) {
	hf, err := zoo.LoadHFBERT(tinyBERTFolder(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := hf.Tokenizer.Config()
	cfg.MaxLen = 16
	tok, err := text.New(hf.Tokenizer.Vocab(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	docs := []text.Document{
		{Name: "a", Sentences: []string{"apple .", "lemon mango grape cherry banana apple lemon mango grape cherry banana apple ."}},
		{Name: "b", Sentences: []string{"iron copper zinc tin lead nickel iron copper zinc tin lead .", "lead tin ."}},
		{Name: "c", Sentences: []string{"river ."}},
	}
	seqs, _, err := docSequences(tok, docs, 2, 16)
	if err != nil {
		t.Fatal(err)
	}
	// 2+13 and 12+3 tokens do not fit one sequence of 14.
	if len(seqs) != 5 {
		t.Fatalf("%d sequences, want 5", len(seqs))
	}
	for _, pool := range []string{"mean", "cls"} {
		one, err := embedDocuments(hf.Model, tok, seqs, len(docs), pool, 1)
		if err != nil {
			t.Fatal(err)
		}
		all, err := embedDocuments(hf.Model, tok, seqs, len(docs), pool, len(seqs))
		if err != nil {
			t.Fatal(err)
		}
		for i := range one {
			if d := one[i] - all[i]; d > 1e-4 || d < -1e-4 {
				t.Fatalf("%s: value %d is %g one at a time, %g batched", pool, i, one[i], all[i])
			}
		}
	}
}
