package zoo

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/weights"
)

// The parity fixtures come from scripts/gen_parity.py (PyTorch 1.13); see
// its doc string for what each file holds. -update reruns it.
var update = flag.Bool("update", false, "regenerate testdata with scripts/gen_parity.py (needs /usr/bin/python3 with torch)")

// parityTol is the bar: max abs difference to PyTorch.
const parityTol = 1e-4

func TestMain(m *testing.M) {
	flag.Parse()
	if *update {
		cmd := exec.Command("/usr/bin/python3", "../scripts/gen_parity.py", "--out", "testdata")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "gen_parity.py:", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

type fixture struct {
	name    string
	weights *weights.File
	io      *weights.File
}

func loadFixture(t *testing.T, name string) *fixture {
	t.Helper()
	w, err := weights.Read(filepath.Join("testdata", name+".weights.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	io, err := weights.Read(filepath.Join("testdata", name+".io.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{name: name, weights: w, io: io}
}

func (f *fixture) f32(t *testing.T, name string) *tensor.Tensor {
	t.Helper()
	v, err := f.io.Float32(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (f *fixture) ints(t *testing.T, name string) []int {
	t.Helper()
	tt, ok := f.io.Tensors[name]
	if !ok {
		t.Fatalf("%s: no tensor %q", f.name, name)
	}
	vs, err := tt.Int64()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int, len(vs))
	for i, v := range vs {
		out[i] = int(v)
	}
	return out
}

// load builds nothing itself: it loads the fixture's weights into m
// (strictly: every key must match by name and shape).
func (f *fixture) load(t *testing.T, m nn.Module) {
	t.Helper()
	if err := nn.LoadState(m, f.weights.Tensors, true); err != nil {
		t.Fatalf("%s: %v", f.name, err)
	}
}

// compare fails when got and want differ in shape or by more than tol.
func compare(t *testing.T, what string, got, want *tensor.Tensor, tol float64) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: no value (want shape %v)", what, want.Shape)
		return
	}
	if !tensor.SameShape(got.Shape, want.Shape) {
		t.Errorf("%s: shape %v, want %v", what, got.Shape, want.Shape)
		return
	}
	worst, at := 0.0, 0
	for i := range got.Data {
		d := math.Abs(float64(got.Data[i]) - float64(want.Data[i]))
		if d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	if worst > tol || math.IsNaN(worst) {
		t.Errorf("%s: max abs diff %.3g at %d (got %g, want %g), tolerance %g", what, worst, at, got.Data[at], want.Data[at], tol)
	}
}

// seededLoss is sum over outputs of sum(out * r): its gradient with respect
// to each output is r, as in the fixture script.
func seededLoss(tp *autograd.Tape, outs []*autograd.Var, rs []*tensor.Tensor) *autograd.Var {
	var loss *autograd.Var
	for i, o := range outs {
		l := tp.SumAll(tp.Mul(o, autograd.Const(rs[i])))
		if loss == nil {
			loss = l
		} else {
			loss = tp.Add(loss, l)
		}
	}
	return loss
}

// checkGrads compares every parameter gradient with the fixture's and makes
// sure the fixture holds no gradient the model lacks.
func (f *fixture) checkGrads(t *testing.T, m nn.Module, prefix string) {
	t.Helper()
	s := nn.StateOf(m)
	for _, p := range s.Params {
		compare(t, f.name+" grad "+p.Name, p.Var.Grad, f.f32(t, prefix+"grad."+p.Name), parityTol)
	}
	n := 0
	for _, name := range f.io.Names() {
		if strings.HasPrefix(name, prefix+"grad.") {
			n++
		}
	}
	if n != len(s.Params) {
		t.Errorf("%s: fixture has %d gradients, model %d parameters", f.name, n, len(s.Params))
	}
}

func zeroGrads(m nn.Module) {
	for _, p := range nn.StateOf(m).Params {
		p.Var.ZeroGrad()
	}
}

// TestResNetParity loads torchvision-named weights into reduced-width
// ResNets and matches PyTorch's eval output, train output (batch
// statistics), every parameter gradient, and the running statistics after
// the train-mode step.
func TestResNetParity(t *testing.T) {
	cases := []struct {
		fixture string
		cfg     ResNetConfig
	}{
		{"resnet18_cifar", ResNetConfig{Depth: 18, Stem: "cifar", Width: 0.0625, InChannels: 3, NumClasses: 10}},
		{"resnet18_imagenet", ResNetConfig{Depth: 18, Stem: "imagenet", Width: 0.0625, InChannels: 1}},
		{"resnet50_cifar", ResNetConfig{Depth: 50, Stem: "cifar", Width: 0.03125, InChannels: 2, NumClasses: 7}},
	}
	for _, c := range cases {
		t.Run(c.fixture, func(t *testing.T) {
			f := loadFixture(t, c.fixture)
			m, err := NewResNet(c.cfg, rand.New(rand.NewPCG(1, 2)))
			if err != nil {
				t.Fatal(err)
			}
			f.load(t, m)
			x := autograd.Const(f.f32(t, "input"))
			tp := autograd.NewTape()

			m.SetTraining(false)
			compare(t, "eval output", m.Forward(tp, x).Value, f.f32(t, "eval.out0"), parityTol)
			tp.Reset()

			m.SetTraining(true)
			out := m.Forward(tp, x)
			compare(t, "train output", out.Value, f.f32(t, "train.out0"), parityTol)
			if err := tp.Backward(seededLoss(tp, []*autograd.Var{out}, []*tensor.Tensor{f.f32(t, "r.out0")})); err != nil {
				t.Fatal(err)
			}
			f.checkGrads(t, m, "")
			for _, b := range nn.StateOf(m).Buffers {
				if b.Count != nil {
					want := f.ints(t, "after."+b.Name)
					if *b.Count != int64(want[0]) {
						t.Errorf("%s = %d after one step, want %d", b.Name, *b.Count, want[0])
					}
					continue
				}
				compare(t, "after train step "+b.Name, b.T, f.f32(t, "after."+b.Name), parityTol)
			}
		})
	}
}

// TestViTParity matches timm-named ViTs (class-token and mean pooling) at the
// training size, and at other sizes through the bicubic position-embedding
// resize, including the gradients that flow back through the resize.
func TestViTParity(t *testing.T) {
	cases := []struct {
		fixture string
		cfg     ViTConfig
		resized int
	}{
		{"vit_cls", ViTConfig{ImageSize: 16, PatchSize: 4, InChannels: 3, Dim: 32, Depth: 2, Heads: 4, MLPRatio: 4, Pool: "cls", NumClasses: 10}, 2},
		{"vit_mean", ViTConfig{ImageSize: 16, PatchSize: 8, InChannels: 1, Dim: 16, Depth: 1, Heads: 2, MLPRatio: 2, Pool: "mean"}, 1},
	}
	for _, c := range cases {
		t.Run(c.fixture, func(t *testing.T) {
			f := loadFixture(t, c.fixture)
			m, err := NewViT(c.cfg, rand.New(rand.NewPCG(1, 2)))
			if err != nil {
				t.Fatal(err)
			}
			f.load(t, m)
			x := autograd.Const(f.f32(t, "input"))
			tp := autograd.NewTape()

			m.SetTraining(false)
			compare(t, "eval output", m.Forward(tp, x).Value, f.f32(t, "eval.out0"), parityTol)
			tp.Reset()

			m.SetTraining(true)
			out := m.Forward(tp, x)
			compare(t, "train output", out.Value, f.f32(t, "train.out0"), parityTol)
			if err := tp.Backward(seededLoss(tp, []*autograd.Var{out}, []*tensor.Tensor{f.f32(t, "r.out0")})); err != nil {
				t.Fatal(err)
			}
			f.checkGrads(t, m, "")
			tp.Reset()

			for i := range c.resized {
				p := fmt.Sprintf("resize%d.", i)
				xr := autograd.Const(f.f32(t, p+"input"))
				zeroGrads(m)
				out := m.Forward(tp, xr)
				compare(t, p+"output", out.Value, f.f32(t, p+"eval"), parityTol)
				if err := tp.Backward(seededLoss(tp, []*autograd.Var{out}, []*tensor.Tensor{f.f32(t, p+"r")})); err != nil {
					t.Fatal(err)
				}
				compare(t, p+"grad pos_embed", m.PosEmbed.Grad, f.f32(t, p+"grad.pos_embed"), parityTol)
				compare(t, p+"grad patch_embed", m.PatchEmbed.Weight.Grad, f.f32(t, p+"grad.patch_embed.proj.weight"), parityTol)
				tp.Reset()
			}
		})
	}
}

// TestBERTParity matches a Hugging Face-named BertForMaskedLM (with pooler)
// on a padded batch with two segments: sequence output, pooled output, MLM
// logits through the tied decoder, and every gradient (the padding row of
// the word embeddings gets none from the lookup, as with padding_idx).
func TestBERTParity(t *testing.T) {
	f := loadFixture(t, "bert_mlm")
	cfg := BERTConfig{VocabSize: 100, Hidden: 32, Layers: 2, Heads: 4, Intermediate: 64, MaxPositions: 16,
		TypeVocabSize: 2, PadTokenID: 0, Pooler: true, MLMHead: true}
	m, err := NewBERT(cfg, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	f.load(t, m)
	ids := f.ints(t, "input_ids")
	shape := f.io.Tensors["input_ids"].Shape
	in := BERTInput{Batch: shape[0], Seq: shape[1], IDs: ids, TokenTypes: f.ints(t, "token_type_ids"), Mask: f.ints(t, "attention_mask")}
	names := []string{"sequence", "pooled", "logits"}
	tp := autograd.NewTape()
	run := func() []*autograd.Var {
		o := m.Forward(tp, in)
		return []*autograd.Var{o.Sequence, o.Pooled, m.MLMLogits(tp, o.Sequence)}
	}

	m.SetTraining(false)
	for i, o := range run() {
		compare(t, "eval "+names[i], o.Value, f.f32(t, "eval."+names[i]), parityTol)
	}
	tp.Reset()

	m.SetTraining(true)
	outs := run()
	var rs []*tensor.Tensor
	for i, o := range outs {
		compare(t, "train "+names[i], o.Value, f.f32(t, "train."+names[i]), parityTol)
		rs = append(rs, f.f32(t, "r."+names[i]))
	}
	if err := tp.Backward(seededLoss(tp, outs, rs)); err != nil {
		t.Fatal(err)
	}
	f.checkGrads(t, m, "")
}
