package mlm

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/data/text"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/weights"
	"github.com/sslzoo/sslzoo/zoo"
)

// testdata/mlm_golden.safetensors comes from scripts/gen_mlm_golden.py
// (PyTorch, Hugging Face-structured BertForMaskedLM).

func tinyBERT(t *testing.T, vocab int) *zoo.BERT {
	t.Helper()
	m, err := zoo.NewBERT(zoo.BERTConfig{VocabSize: vocab, Hidden: 16, Layers: 2, Heads: 4, Intermediate: 24,
		MaxPositions: 32, MLMHead: true}, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func testTokenizer(t *testing.T) *text.Tokenizer {
	t.Helper()
	tok, err := text.LoadDir(filepath.Join("..", "testdata", "hf_bert_mlm"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func ints(t *testing.T, f *weights.File, name string) []int {
	t.Helper()
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

func near(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(float64(got[i] - want[i])); !(d <= tol*(1+math.Abs(float64(want[i])))) {
			t.Errorf("%s[%d] = %g, want %g", what, i, got[i], want[i])
			return
		}
	}
}

func TestMLMGolden(t *testing.T) {
	f, err := weights.Read(filepath.Join("testdata", "mlm_golden.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	m := tinyBERT(t, 40)
	params := nn.StateOf(m).Params
	ts := map[string]*weights.Tensor{}
	for _, p := range params {
		w, ok := f.Tensors["param."+p.Name]
		if !ok {
			t.Fatalf("golden lacks %s", p.Name)
		}
		ts[p.Name] = w
	}
	if err := nn.LoadState(m, ts, true); err != nil {
		t.Fatal(err)
	}
	m.SetTraining(false) // the reference runs with dropout 0
	ids := ints(t, f, "in.input_ids")
	in := zoo.BERTInput{Batch: 2, Seq: 10, IDs: ids, Mask: ints(t, f, "in.attention_mask")}
	labels := ints(t, f, "in.labels")

	tp := autograd.NewTape()
	loss, _, targets, err := Loss(tp, m, in, labels)
	if err != nil {
		t.Fatal(err)
	}
	if len(targets) != 5 {
		t.Fatalf("%d targets", len(targets))
	}
	want, _ := f.Float32("out.loss")
	near(t, "loss", loss.Value.Data, want.Data, 1e-5)
	if err := tp.Backward(loss); err != nil {
		t.Fatal(err)
	}
	for _, p := range params {
		g, _ := f.Float32("grad." + p.Name)
		if p.Var.Grad == nil {
			t.Fatalf("%s: no gradient", p.Name)
		}
		near(t, "grad "+p.Name, p.Var.Grad.Data, g.Data, 1e-4)
	}
	tp.Reset()

	// One Trainer step: clipping at 1 and AdamW with decay groups.
	cfg := Config{LR: 1e-3, WeightDecay: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, ClipNorm: 1, Mask: text.DefaultMaskConfig()}
	tr, err := NewTrainer(cfg, m, testTokenizer(t), rand.New(rand.NewPCG(2, 2)))
	if err != nil {
		t.Fatal(err)
	}
	m.SetTraining(false)
	res, err := tr.StepMasked(tp, Masked{Input: in, Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	norm, _ := f.Float32("out.grad_norm")
	if math.Abs(res.GradNorm-float64(norm.Data[0])) > 1e-4*float64(norm.Data[0]) {
		t.Errorf("grad norm %g, want %g", res.GradNorm, norm.Data[0])
	}
	for _, p := range params {
		// The key bias cannot change attention (it adds the same amount to
		// every score of a query), so its exact gradient is 0 and what
		// either side computes is rounding noise, which Adam's
		// normalisation turns into float32-sized steps here and into
		// nothing in float64. Its gradient was compared above.
		if strings.HasSuffix(p.Name, "attention.self.key.bias") {
			continue
		}
		w, _ := f.Float32("step." + p.Name)
		near(t, "after step "+p.Name, p.Var.Value.Data, w.Data, 2e-5)
	}
	if tr.Steps() != 1 || res.Masked != 5 {
		t.Errorf("steps %d, masked %d", tr.Steps(), res.Masked)
	}
}

func opticksSequences(t *testing.T, tok *text.Tokenizer, seqLen int) []text.Sequence {
	t.Helper()
	doc, err := text.LoadOpticks()
	if err != nil {
		t.Skipf("Opticks not available: %v", err)
	}
	seqs, _, err := text.Pack(tok, []text.Document{doc}, text.PackConfig{SeqLen: seqLen})
	if err != nil {
		t.Fatal(err)
	}
	return seqs
}

// A small BERT overfits a few Opticks sequences: the masked-token loss
// falls well below its starting value (about ln(vocab)).
func TestTrainerLearns(t *testing.T) {
	tok, err := text.Load(filepath.Join("..", "..", "data", "text", "testdata", "vocab_opticks.txt"), text.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	seqs := opticksSequences(t, tok, 24)[:8]
	m := tinyBERT(t, tok.Vocab().Size())
	cfg := DefaultConfig(0)
	cfg.LR, cfg.Mask.Prob = 5e-3, 0.3
	tr, err := NewTrainer(cfg, m, tok, rand.New(rand.NewPCG(5, 5)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := tok.PadSequences(seqs, 0)
	if err != nil {
		t.Fatal(err)
	}
	tp := autograd.NewTape()
	var first, last float64
	const steps = 150
	for i := range steps {
		r, err := tr.Step(tp, b)
		if err != nil {
			t.Fatal(err)
		}
		if i < 5 {
			first += float64(r.Loss) / 5
		}
		if i >= steps-5 {
			last += float64(r.Loss) / 5
		}
	}
	if !(last < 0.6*first) {
		t.Errorf("loss %g -> %g: not learning", first, last)
	}
	ev, err := Evaluate(m, tok, text.DefaultMaskConfig(), seqs, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Masked == 0 || !(ev.Perplexity() < math.Exp(first)) || !(ev.Accuracy > 0.1) {
		t.Errorf("evaluation on the training sequences: %+v (perplexity %g)", ev, ev.Perplexity())
	}
}

func TestTrainerErrors(t *testing.T) {
	tok := testTokenizer(t)
	noHead, err := zoo.NewBERT(zoo.BERTConfig{VocabSize: 40, Hidden: 8, Layers: 1, Heads: 2}, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewTrainer(DefaultConfig(10), noHead, tok, nil); err == nil || !strings.Contains(err.Error(), "MLM head") {
		t.Errorf("no head: %v", err)
	}
	if _, err := NewTrainer(DefaultConfig(10), tinyBERT(t, 41), tok, nil); err == nil || !strings.Contains(err.Error(), "vocabulary") {
		t.Errorf("vocab mismatch: %v", err)
	}
	bad := DefaultConfig(10)
	bad.LR = math.NaN()
	if _, err := NewTrainer(bad, tinyBERT(t, 40), tok, nil); err == nil {
		t.Error("NaN learning rate accepted")
	}
	tr, err := NewTrainer(DefaultConfig(10), tinyBERT(t, 40), tok, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	// Only specials: nothing to mask.
	b := &text.Batch{B: 1, T: 2, IDs: []int{3, 4}, TypeIDs: []int{0, 0}, AttentionMask: []int{1, 1}}
	if _, err := tr.Step(autograd.NewTape(), b); err == nil || !strings.Contains(err.Error(), "selected no token") {
		t.Errorf("specials only: %v", err)
	}
	if _, _, _, err := Loss(autograd.NewTape(), tr.Model, zoo.BERTInput{Batch: 1, Seq: 2, IDs: []int{3, 4}}, []int{-100, 99}); err == nil {
		t.Error("label outside the vocabulary accepted")
	}
	long := make([]int, 40)
	if _, _, _, err := Loss(autograd.NewTape(), tr.Model, zoo.BERTInput{Batch: 1, Seq: 40, IDs: long}, append([]int{7}, make([]int, 39)...)); err == nil ||
		!strings.Contains(err.Error(), "exceeds") {
		t.Errorf("sequence over the position table: %v", err)
	}
}
