package autograd

import (
	"math/rand/v2"
	"testing"

	"github.com/sslzoo/sslzoo/tensor"
)

// Benchmarks of the memory-bound ops on a ResNet basic-block activation
// ([64,64,32,32]), forward + backward; scripts/bench_conv_torch.py bn|maxpool
// times PyTorch on the same shapes.

func benchFwdBwd(b *testing.B, x *tensor.Tensor, f func(tp *Tape, x *Var) *Var) {
	tp := NewTape()
	xv := NewParam("x", x)
	run := func() {
		out := f(tp, xv)
		seed := tp.Alloc(out.Value.Shape...)
		seed.Fill(1)
		if err := tp.BackwardWith(out, seed); err != nil {
			b.Fatal(err)
		}
		tp.Reset()
	}
	run() // fill the tape's pool
	b.ResetTimer()
	for range b.N {
		run()
	}
}

func BenchmarkBatchNormTrain(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	x := convTestRand(rng, 64, 64, 32, 32)
	w, bias := NewParam("w", tensor.New(64)), NewParam("b", tensor.New(64))
	w.Value.Fill(1)
	rm, rv := tensor.New(64), tensor.New(64)
	rv.Fill(1)
	benchFwdBwd(b, x, func(tp *Tape, x *Var) *Var {
		return tp.BatchNorm(x, w, bias, rm, rv, true, 0.1, 1e-5)
	})
}

func BenchmarkMaxPool3x3s2(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	x := convTestRand(rng, 64, 64, 32, 32)
	benchFwdBwd(b, x, func(tp *Tape, x *Var) *Var { return tp.MaxPool2d(x, 3, 2, 1) })
}
