package export

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/zoo"
)

func tinyViT(t *testing.T, pool string, classes int) *zoo.ViT {
	t.Helper()
	m, err := zoo.NewViT(zoo.ViTConfig{ImageSize: 8, PatchSize: 4, InChannels: 1, Dim: 8, Depth: 1, Heads: 2, Pool: pool, NumClasses: classes},
		rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestNewBackboneRefuses: every export NewBackbone cannot make is an error
// naming the model and what to change.
func TestNewBackboneRefuses(t *testing.T) {
	rn, err := zoo.NewResNet(zoo.ResNetConfig{Depth: 18, Stem: "cifar", Width: 0.0625}, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	bert, err := zoo.NewBERT(zoo.BERTConfig{VocabSize: 20, Hidden: 8, Layers: 1, Heads: 2, Intermediate: 16, MaxPositions: 16, TypeVocabSize: 2, Eps: 1e-12},
		rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		m    zoo.Backbone
		opts BackboneOptions
		want string
	}{
		{"resnet pooled", rn, BackboneOptions{Pool: PoolMean}, "pooling applies to ViT and BERT"},
		{"unknown pooling", tinyViT(t, "cls", 0), BackboneOptions{Pool: "max"}, "want cls or mean"},
		{"cls of a mean vit", tinyViT(t, "mean", 0), BackboneOptions{Pool: PoolCLS}, "only be exported with pooling mean"},
		{"vit with a head", tinyViT(t, "cls", 3), BackboneOptions{Pool: PoolMean}, "classification head"},
		{"vit at another size", tinyViT(t, "cls", 0), BackboneOptions{ImageSize: 16}, "training size 8, not 16"},
		{"bert too long", bert, BackboneOptions{Seq: 17}, "sequence length 17 outside 1..16"},
		{"bert unknown pooling", bert, BackboneOptions{Pool: "max"}, "want cls or mean"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := NewBackbone("m", c.m, c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// TestNewBackboneViTMeanPooling: mean pooling of a class-token ViT is the
// average of its normalised patch tokens, the class token left out, and
// the choice is recorded.
func TestNewBackboneViTMeanPooling(t *testing.T) {
	m := tinyViT(t, "cls", 0)
	b, err := NewBackbone("vit", m, BackboneOptions{Pool: PoolMean, Metadata: Metadata{Extra: map[string]string{"k": "v"}}})
	if err != nil {
		t.Fatal(err)
	}
	if b.Spec.Metadata[PoolingKey] != PoolMean || b.Spec.Metadata["k"] != "v" || b.Channels != 1 || b.Height != 8 {
		t.Fatalf("backbone %+v, metadata %v", b, b.Spec.Metadata)
	}
	x := tensor.New(2, 1, 8, 8)
	rng := rand.New(rand.NewPCG(2, 2))
	for i := range x.Data {
		x.Data[i] = float32(rng.NormFloat64())
	}
	tp := autograd.NewTape()
	var got, tokens *tensor.Tensor
	tp.NoGrad(func() {
		got = b.Spec.Forward(tp, []*autograd.Var{autograd.Const(x)})[0].Value
		tokens = m.Norm.Forward(tp, m.Encode(tp, m.Embed(tp, autograd.Const(x)))).Value // [2, 1+4, 8]
	})
	if len(got.Shape) != 2 || got.Shape[0] != 2 || got.Shape[1] != 8 {
		t.Fatalf("embedding shape %v", got.Shape)
	}
	for r := range 2 {
		for k := range 8 {
			var sum float64
			for j := 1; j < 5; j++ {
				sum += float64(tokens.Data[(r*5+j)*8+k])
			}
			if d := math.Abs(sum/4 - float64(got.Data[r*8+k])); d > 1e-5 {
				t.Fatalf("row %d dim %d: embedding %g, mean of patch tokens %g", r, k, got.Data[r*8+k], sum/4)
			}
		}
	}
	// The default is the model's own pooling.
	b, err = NewBackbone("vit", m, BackboneOptions{})
	if err != nil || b.Spec.Metadata[PoolingKey] != PoolCLS {
		t.Fatalf("default pooling: %v, metadata %v", err, b.Spec.Metadata)
	}
}

// TestNewBackboneViTNormMean: a "norm-mean" ViT holds a "cls" ViT's
// weights; its own embedding is the mean pooling (recorded as "mean"), and
// it can still be exported with the class token.
func TestNewBackboneViTNormMean(t *testing.T) {
	cls, nm := tinyViT(t, "cls", 0), tinyViT(t, "norm-mean", 0)
	x := tensor.New(2, 1, 8, 8)
	rng := rand.New(rand.NewPCG(3, 3))
	for i := range x.Data {
		x.Data[i] = float32(rng.NormFloat64())
	}
	embed := func(m *zoo.ViT, pool string) (*tensor.Tensor, string) {
		t.Helper()
		b, err := NewBackbone("vit", m, BackboneOptions{Pool: pool})
		if err != nil {
			t.Fatal(err)
		}
		tp := autograd.NewTape()
		var out *tensor.Tensor
		tp.NoGrad(func() { out = b.Spec.Forward(tp, []*autograd.Var{autograd.Const(x)})[0].Value })
		return out, b.Spec.Metadata[PoolingKey]
	}
	for _, c := range []struct{ nmPool, clsPool, wantKey string }{{"", PoolMean, PoolMean}, {PoolCLS, "", PoolCLS}} {
		got, key := embed(nm, c.nmPool)
		want, _ := embed(cls, c.clsPool)
		if key != c.wantKey {
			t.Errorf("norm-mean ViT exported with pool %q records %q, want %q", c.nmPool, key, c.wantKey)
		}
		for i := range want.Data {
			if d := math.Abs(float64(got.Data[i] - want.Data[i])); d > 1e-6 {
				t.Fatalf("pool %q: element %d is %g, want %g", c.nmPool, i, got.Data[i], want.Data[i])
			}
		}
	}
}

// TestNewBackbonePreprocess: the recorded preprocessing follows the stem
// and the channel count unless the caller gives one.
func TestNewBackbonePreprocess(t *testing.T) {
	cases := []struct {
		stem     string
		channels int
		given    *Preprocess
		want     string // channels, crop, size
	}{
		{"cifar", 3, nil, "RGB none 32"},
		{"imagenet", 3, nil, "RGB center 224"},
		{"cifar", 1, nil, "L none 32"},
		{"cifar", 1, &Preprocess{Channels: "L", Size: [2]int{16, 16}, Crop: "center", Mean: []float64{0.2}, Std: []float64{0.3}}, "L center 16"},
	}
	for _, c := range cases {
		m, err := zoo.NewResNet(zoo.ResNetConfig{Depth: 18, Stem: c.stem, Width: 0.0625, InChannels: c.channels}, rand.New(rand.NewPCG(1, 1)))
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewBackbone("r", m, BackboneOptions{Metadata: Metadata{Preprocess: c.given}})
		if err != nil {
			t.Fatal(err)
		}
		var pp Preprocess
		if err := json.Unmarshal([]byte(b.Spec.Metadata["sslzoo.preprocess"]), &pp); err != nil {
			t.Fatal(err)
		}
		got := strings.Join([]string{pp.Channels, pp.Crop, strconv.Itoa(pp.Size[0])}, " ")
		if got != c.want || len(pp.Mean) != c.channels || b.Spec.Metadata["sslzoo.backbone"] != "r" {
			t.Errorf("%s %d channels: preprocess %+v (%s), want %s", c.stem, c.channels, pp, got, c.want)
		}
	}
}

// TestWithExtra: the copy carries the key; the original map is untouched.
func TestWithExtra(t *testing.T) {
	base := Metadata{Method: "m", Extra: map[string]string{"a": "1"}}
	got := base.WithExtra("b", "2").WithExtra("a", "3")
	if len(base.Extra) != 1 || base.Extra["a"] != "1" {
		t.Fatalf("original changed: %v", base.Extra)
	}
	if got.Method != "m" || got.Extra["a"] != "3" || got.Extra["b"] != "2" {
		t.Fatalf("copy %+v", got)
	}
	if (Metadata{}).WithExtra("k", "v").Extra["k"] != "v" {
		t.Fatal("nil Extra")
	}
}
