package zoo

import (
	"math/rand/v2"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
)

func randTensor(rng *rand.Rand, shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	for i := range t.Data {
		t.Data[i] = float32(rng.NormFloat64())
	}
	return t
}

// TestBERTDropout checks that dropout acts in training mode only: eval is
// deterministic, two training passes differ.
func TestBERTDropout(t *testing.T) {
	m, err := NewBERT(BERTConfig{VocabSize: 20, Hidden: 8, Layers: 1, Heads: 2, HiddenDropout: 0.3, AttentionDropout: 0.3},
		rand.New(rand.NewPCG(5, 6)))
	if err != nil {
		t.Fatal(err)
	}
	in := BERTInput{Batch: 2, Seq: 4, IDs: []int{1, 2, 3, 4, 5, 6, 0, 0}, Mask: []int{1, 1, 1, 1, 1, 1, 0, 0}}
	run := func() *tensor.Tensor {
		tp := autograd.NewTape()
		return m.Forward(tp, in).Sequence.Value.Clone()
	}
	m.SetTraining(false)
	a, b := run(), run()
	compare(t, "eval is deterministic", a, b, 0)
	m.SetTraining(true)
	c, d := run(), run()
	same := true
	for i := range c.Data {
		same = same && c.Data[i] == d.Data[i]
	}
	if same {
		t.Error("two training passes with dropout 0.3 gave identical outputs")
	}
}

// TestBERTPaddingRowGradient: with padding in the batch, the padding row of
// the word embeddings gets no gradient from the lookup (PyTorch's
// padding_idx), while the other looked-up rows do.
func TestBERTPaddingRowGradient(t *testing.T) {
	m, err := NewBERT(BERTConfig{VocabSize: 12, Hidden: 8, Layers: 1, Heads: 2, PadTokenID: 3}, rand.New(rand.NewPCG(5, 6)))
	if err != nil {
		t.Fatal(err)
	}
	tp := autograd.NewTape()
	out := m.Forward(tp, BERTInput{Batch: 1, Seq: 4, IDs: []int{5, 7, 3, 3}})
	if err := tp.Backward(tp.SumAll(tp.Mul(out.Sequence, autograd.Const(randTensor(rand.New(rand.NewPCG(1, 1)), 1, 4, 8))))); err != nil {
		t.Fatal(err)
	}
	g := m.Embeddings.Word.Weight.Grad
	row := func(i int) (s float32) {
		for _, v := range g.Data[i*8 : (i+1)*8] {
			s += v * v
		}
		return s
	}
	if row(3) != 0 {
		t.Errorf("padding row gradient norm² %g, want 0", row(3))
	}
	if row(5) == 0 || row(7) == 0 {
		t.Errorf("token rows got no gradient: %g, %g", row(5), row(7))
	}
}

// TestResNetZeroInitResidual checks the option zeroes each block's last
// BatchNorm weight and nothing else.
func TestResNetZeroInitResidual(t *testing.T) {
	for _, depth := range []int{18, 50} {
		m, err := NewResNet(ResNetConfig{Depth: depth, Width: 0.125, ZeroInitResidual: true}, rand.New(rand.NewPCG(1, 1)))
		if err != nil {
			t.Fatal(err)
		}
		last := "bn2.weight"
		if depth == 50 {
			last = "bn3.weight"
		}
		for _, p := range nn.StateOf(m).Params {
			if !isBNWeight(p.Name) {
				continue
			}
			zero := true
			for _, v := range p.Var.Value.Data {
				zero = zero && v == 0
			}
			if want := len(p.Name) > len(last) && p.Name[len(p.Name)-len(last):] == last; zero != want {
				t.Errorf("resnet%d %s: all zero %v, want %v", depth, p.Name, zero, want)
			}
		}
	}
}

func isBNWeight(name string) bool {
	for _, s := range []string{"bn1.weight", "bn2.weight", "bn3.weight", "downsample.1.weight"} {
		if len(name) >= len(s) && name[len(name)-len(s):] == s {
			return true
		}
	}
	return false
}

// TestFeatureDims checks FeatureDim and the output widths with and without
// classifier heads.
func TestFeatureDims(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	tp := autograd.NewTape()
	r, err := NewResNet(ResNetConfig{Depth: 50, Stem: "cifar", Width: 0.0625, InChannels: 1}, rng)
	if err != nil {
		t.Fatal(err)
	}
	if r.FeatureDim() != 128 {
		t.Errorf("resnet50 width 1/16: feature dim %d, want 128", r.FeatureDim())
	}
	r.SetTraining(false)
	if s := r.Forward(tp, autograd.Const(randTensor(rng, 2, 1, 8, 8))).Shape(); !tensor.SameShape(s, []int{2, 128}) {
		t.Errorf("resnet50 features shape %v", s)
	}
	v, err := NewViT(ViTConfig{ImageSize: 8, PatchSize: 4, Dim: 8, Depth: 1, Heads: 2, NumClasses: 5}, rng)
	if err != nil {
		t.Fatal(err)
	}
	if s := v.Forward(tp, autograd.Const(randTensor(rng, 3, 3, 8, 12))).Shape(); !tensor.SameShape(s, []int{3, 5}) {
		t.Errorf("vit logits shape %v", s)
	}
	if s := v.Features(tp, autograd.Const(randTensor(rng, 3, 3, 8, 8))).Shape(); !tensor.SameShape(s, []int{3, 8}) {
		t.Errorf("vit features shape %v", s)
	}
}
