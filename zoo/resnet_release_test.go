package zoo

import (
	"math/rand/v2"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/tensor"
)

// TestResNetNoGradReleases: with nothing recorded, a ResNet hands each
// activation back to the tape's pool once its last reader has run, and
// computes exactly what a recorded forward computes (twice in a row on
// one tape, so reused buffers are not read stale).
func TestResNetNoGradReleases(t *testing.T) {
	for _, cfg := range []ResNetConfig{
		{Depth: 18, Stem: "cifar", Width: 0.125, InChannels: 3},
		{Depth: 50, Stem: "imagenet", Width: 0.0625, InChannels: 3},
	} {
		m, err := NewResNet(cfg, rand.New(rand.NewPCG(1, 2)))
		if err != nil {
			t.Fatal(err)
		}
		m.SetTraining(false)
		x := tensor.New(2, 3, 32, 32)
		rng := rand.New(rand.NewPCG(3, 4))
		for i := range x.Data {
			x.Data[i] = float32(rng.NormFloat64())
		}
		in := autograd.Const(x)

		rec := autograd.NewTape()
		want := m.Forward(rec, in).Value.Clone()
		recorded := rec.HeldBytes()

		tp := autograd.NewTape()
		var held int64
		for round := range 2 {
			var got *tensor.Tensor
			tp.NoGrad(func() { got = m.Forward(tp, in).Value })
			for i, v := range got.Data {
				if v != want.Data[i] {
					t.Fatalf("depth %d, round %d: value %d is %v without recording, %v with", cfg.Depth, round, i, v, want.Data[i])
				}
			}
			held = tp.HeldBytes()
		}
		if held*4 > recorded {
			t.Errorf("depth %d: a forward under NoGrad holds %d bytes, a recorded one %d (want under a quarter)", cfg.Depth, held, recorded)
		}
		t.Logf("depth %d: held %d bytes under NoGrad, %d recorded", cfg.Depth, held, recorded)
	}
}
