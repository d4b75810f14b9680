package zoo

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/weights"
)

// testdata/hf_bert_mlm and hf_bert_model come from scripts/gen_hf_bert.py:
// Hugging Face-layout checkpoints and PyTorch's outputs for them.

func hfExpected(t *testing.T, dir string) (*weights.File, BERTInput) {
	t.Helper()
	f, err := weights.Read(filepath.Join(dir, "expected.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	ints := func(name string) []int {
		v, err := f.Tensors[name].Int64()
		if err != nil {
			t.Fatal(err)
		}
		out := make([]int, len(v))
		for i, x := range v {
			out[i] = int(x)
		}
		return out
	}
	s := f.Tensors["input_ids"].Shape
	return f, BERTInput{Batch: s[0], Seq: s[1], IDs: ints("input_ids"), Mask: ints("attention_mask"), TokenTypes: ints("token_type_ids")}
}

func hfCompare(t *testing.T, what string, got []float32, f *weights.File, name string, tol float64) {
	t.Helper()
	want, err := f.Float32(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want.Data) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want.Data))
	}
	for i := range got {
		if d := math.Abs(float64(got[i] - want.Data[i])); !(d <= tol*(1+math.Abs(float64(want.Data[i])))) {
			t.Fatalf("%s[%d] = %g, want %g", what, i, got[i], want.Data[i])
		}
	}
}

func TestLoadHFBERTMaskedLM(t *testing.T) {
	dir := filepath.Join("testdata", "hf_bert_mlm")
	h, err := LoadHFBERT(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := h.Model
	if m.MLM == nil || m.Pooler != nil || m.Config.Layers != 2 || m.Config.Intermediate != 24 || m.Config.VocabSize != 40 {
		t.Fatalf("built %+v (mlm %v, pooler %v)", m.Config, m.MLM != nil, m.Pooler != nil)
	}
	f, in := hfExpected(t, dir)
	// The tokenizer reproduces the ids the script wrote for its sentence.
	enc, err := h.Tokenizer.Encode("The light of the Sun is refracted by a prism, playing!")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(enc.IDs, in.IDs[:in.Seq]) {
		t.Errorf("tokenized ids %v, want %v", enc.IDs, in.IDs[:in.Seq])
	}
	tp := autograd.NewTape()
	defer tp.Reset()
	var out BERTOutput
	var logits *autograd.Var
	if err := autograd.Catch(func() {
		out = m.Forward(tp, in)
		logits = m.MLMLogits(tp, out.Sequence)
	}); err != nil {
		t.Fatal(err)
	}
	// Padded positions attend like PyTorch's too (their outputs are
	// defined, just unused), so every position is compared.
	hfCompare(t, "last_hidden_state", out.Sequence.Value.Data, f, "last_hidden_state", 2e-5)
	hfCompare(t, "logits", logits.Value.Data, f, "logits", 2e-5)
	if len(h.Ignored) != 0 {
		t.Errorf("ignored %v", h.Ignored)
	}
}

func TestLoadHFBERTModelF16(t *testing.T) {
	dir := filepath.Join("testdata", "hf_bert_model")
	h, err := LoadHFBERT(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := h.Model
	if m.MLM != nil || m.Pooler == nil || m.Config.Layers != 1 || m.Config.Eps != 1e-7 {
		t.Fatalf("built %+v (mlm %v, pooler %v)", m.Config, m.MLM != nil, m.Pooler != nil)
	}
	if !slices.Equal(h.Ignored, []string{"embeddings.position_ids"}) {
		t.Errorf("ignored %v", h.Ignored)
	}
	f, in := hfExpected(t, dir)
	tp := autograd.NewTape()
	defer tp.Reset()
	var out BERTOutput
	if err := autograd.Catch(func() { out = m.Forward(tp, in) }); err != nil {
		t.Fatal(err)
	}
	hfCompare(t, "last_hidden_state", out.Sequence.Value.Data, f, "last_hidden_state", 2e-5)
	hfCompare(t, "pooler_output", out.Pooled.Value.Data, f, "pooler_output", 2e-5)
}

// copyHF copies a test checkpoint folder so a test can damage it.
func copyHF(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	for _, name := range []string{"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestLoadHFBERTErrors(t *testing.T) {
	src := filepath.Join("testdata", "hf_bert_mlm")
	edit := func(file, old, new string) string {
		d := copyHF(t, src)
		p := filepath.Join(d, file)
		b, _ := os.ReadFile(p)
		s := string(b)
		if !strings.Contains(s, old) {
			t.Fatalf("%s has no %q", file, old)
		}
		if err := os.WriteFile(p, []byte(strings.Replace(s, old, new, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	cases := []struct {
		name, dir, want string
	}{
		{"missing folder", filepath.Join(t.TempDir(), "nope"), "config.json"},
		{"activation", edit("config.json", `"hidden_act": "gelu"`, `"hidden_act": "gelu_new"`), "gelu_new"},
		{"position type", edit("config.json", `"absolute"`, `"relative_key"`), "relative_key"},
		{"layers", edit("config.json", `"num_hidden_layers": 2`, `"num_hidden_layers": 3`), "encoder.layer.2"},
		{"hidden", edit("config.json", `"hidden_size": 16`, `"hidden_size": 12`), "shape"},
		{"vocab", edit("vocab.txt", "bodies\n", ""), "vocab_size is 40"},
		{"model type", edit("config.json", `"model_type": "bert"`, `"model_type": "roberta"`), "roberta"},
		{"bad json", edit("config.json", `{`, `[`), "config.json"},
	}
	for _, c := range cases {
		_, err := LoadHFBERT(c.dir)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
	d := copyHF(t, src)
	os.Remove(filepath.Join(d, "model.safetensors"))
	os.WriteFile(filepath.Join(d, "pytorch_model.bin"), []byte("x"), 0o644)
	if _, err := LoadHFBERT(d); err == nil || !strings.Contains(err.Error(), "pytorch_model.bin") {
		t.Errorf("pickle only: %v", err)
	}
}

func TestSaveHFBERTRoundTrip(t *testing.T) {
	h, err := LoadHFBERT(filepath.Join("testdata", "hf_bert_mlm"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "out")
	if err := SaveHFBERT(dir, h.Model, h.Tokenizer, map[string]string{"sslzoo.steps": "3"}); err != nil {
		t.Fatal(err)
	}
	back, err := LoadHFBERT(dir)
	if err != nil {
		t.Fatal(err)
	}
	if back.Model.Config != h.Model.Config {
		t.Errorf("config %+v, want %+v", back.Model.Config, h.Model.Config)
	}
	if back.Tokenizer.Vocab().SHA256() != h.Tokenizer.Vocab().SHA256() {
		t.Error("vocabulary changed")
	}
	a, b := stateValues(t, h.Model), stateValues(t, back.Model)
	for name, x := range a {
		if !slices.Equal(x, b[name]) {
			t.Errorf("%s changed", name)
		}
	}
	f, err := weights.Read(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["format"] != "pt" || f.Metadata["sslzoo.steps"] != "3" {
		t.Errorf("metadata %v", f.Metadata)
	}
	if _, tied := f.Tensors["cls.predictions.decoder.weight"]; tied {
		t.Error("tied decoder weight written")
	}
}

func stateValues(t *testing.T, m *BERT) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	for _, p := range nn.StateOf(m).Params {
		out[p.Name] = p.Var.Value.Data
	}
	return out
}
