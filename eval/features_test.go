package eval

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/data/augment"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/zoo"
)

// halves is a two-class set of 8x8 grey images: class 0 is bright on the
// left half, class 1 on the right, with noise.
func halves(n int, seed uint64) *data.Images {
	rng := rand.New(rand.NewPCG(seed, 1))
	s := &data.Images{Name: "halves", N: n, C: 1, H: 8, W: 8, Pix: make([]uint8, n*64), Labels: make([]int, n)}
	for i := range n {
		c := i % 2
		s.Labels[i] = c
		for y := range 8 {
			for x := range 8 {
				v := 40 + rng.IntN(60)
				if (x < 4) == (c == 0) {
					v += 120
				}
				s.Pix[i*64+y*8+x] = uint8(v)
			}
		}
	}
	return s
}

func tinyResNet(t *testing.T, seed uint64) *zoo.ResNet {
	t.Helper()
	m, err := zoo.NewResNet(zoo.ResNetConfig{Depth: 18, Stem: "cifar", Width: 0.0625, InChannels: 1}, rand.New(rand.NewPCG(seed, 2)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestExtractMatchesForward(t *testing.T) {
	ds := halves(10, 1)
	enc := tinyResNet(t, 1)
	f, err := Extract(context.Background(), enc, ds, ExtractConfig{Batch: 4, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if f.N != 10 || f.D != enc.FeatureDim() || len(f.X) != 10*f.D {
		t.Fatalf("features %d x %d (%d values)", f.N, f.D, len(f.X))
	}
	// Whole set in one eval-mode forward pass: the same features, since
	// evaluation-mode BatchNorm does not mix samples.
	x := tensor.New(10, 1, 8, 8)
	for i := range 10 {
		m, l, _ := ds.Get(i)
		copy(x.Data[i*64:], m.Pix)
		if f.Labels[i] != l {
			t.Fatalf("label %d = %d, want %d", i, f.Labels[i], l)
		}
	}
	tp := autograd.NewTape()
	out := enc.Features(tp, autograd.Const(x))
	for i, v := range out.Value.Data {
		if math.Abs(float64(v-f.X[i])) > 1e-5 {
			t.Fatalf("feature %d = %g, forward gives %g", i, f.X[i], v)
		}
	}

	p, err := Pixels(context.Background(), ds, ExtractConfig{Transform: augment.Eval(4, nil), Batch: 3})
	if err != nil {
		t.Fatal(err)
	}
	if p.N != 10 || p.D != 16 {
		t.Fatalf("pixel features %d x %d, want 10 x 16", p.N, p.D)
	}
	// Class 0 is bright on the left after the resize too.
	if !(p.X[0] > p.X[3]) || !(p.X[16] < p.X[19]) {
		t.Fatalf("pixel rows %v / %v do not show the halves", p.X[:4], p.X[16:20])
	}
}

func TestFinetuneLearns(t *testing.T) {
	train, test := halves(64, 2), halves(40, 3)
	enc := tinyResNet(t, 2)
	cfg := DefaultFinetune()
	cfg.Epochs, cfg.Batch, cfg.LR = 6, 16, 0.05
	cfg.Workers = 2
	var losses []float64
	cfg.Progress = func(_ int, l float64) { losses = append(losses, l) }
	r, err := Finetune(context.Background(), enc, train, test, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.N != 40 || r.Top1 < 0.9 || r.Top5 != 1 {
		t.Fatalf("fine-tune on an easy two-class set: %+v (losses %v)", r, losses)
	}
	if len(losses) != 6 || !(losses[5] < losses[0]) {
		t.Fatalf("losses %v should fall", losses)
	}
}

func TestFinetuneWithLabelFraction(t *testing.T) {
	full := halves(200, 4)
	idx, err := data.LabelFraction(full, 0.1, 1)
	if err != nil {
		t.Fatal(err)
	}
	sub := &data.Subset{Base: full, Indices: idx}
	if sub.Len() != 20 {
		t.Fatalf("10%% of 200 = %d", sub.Len())
	}
	cfg := DefaultFinetune()
	cfg.Epochs, cfg.Batch = 2, 64 // batch larger than the subset shrinks to it
	r, err := Finetune(context.Background(), tinyResNet(t, 3), sub, halves(20, 5), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.N != 20 {
		t.Fatalf("%+v", r)
	}
	if _, err := Finetune(context.Background(), tinyResNet(t, 3), &data.Subset{Base: full, Indices: idx[:1]}, full, cfg); err == nil {
		t.Fatal("one training image accepted")
	}
}
