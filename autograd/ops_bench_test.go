package autograd

import (
	"testing"

	"github.com/sslzoo/sslzoo/tensor"
)

// Benchmarks at the activation sizes of one ViT-tiny / ResNet-18 step at
// batch 64 (forward + backward of one op). scripts/bench_ops.py times the
// same ops in PyTorch for comparison.

func benchOp(b *testing.B, shapes [][]int, f func(tp *Tape, in []*Var) *Var) {
	ins := make([]*Var, len(shapes))
	n := 0
	for i, s := range shapes {
		ins[i] = NewParam("", opRand(uint64(i), fillUniform, s...))
		n = max(n, tensor.Numel(s))
	}
	tp := NewTape()
	run := func() {
		out := f(tp, ins)
		seed := tp.Alloc(out.Shape()...)
		seed.Fill(1)
		if err := tp.BackwardWith(out, seed); err != nil {
			b.Fatal(err)
		}
		tp.Reset()
	}
	run() // warm the pool
	b.SetBytes(int64(4 * n))
	b.ResetTimer()
	for range b.N {
		run()
	}
}

func BenchmarkOpAddSame(b *testing.B) {
	benchOp(b, [][]int{{64, 197, 192}, {64, 197, 192}}, func(tp *Tape, in []*Var) *Var { return tp.Add(in[0], in[1]) })
}

func BenchmarkOpAddBias(b *testing.B) {
	benchOp(b, [][]int{{64, 197, 768}, {768}}, func(tp *Tape, in []*Var) *Var { return tp.Add(in[0], in[1]) })
}

func BenchmarkOpMulChannel(b *testing.B) {
	benchOp(b, [][]int{{64, 64, 32, 32}, {1, 64, 1, 1}}, func(tp *Tape, in []*Var) *Var { return tp.Mul(in[0], in[1]) })
}

func BenchmarkOpReLU(b *testing.B) {
	benchOp(b, [][]int{{64, 64, 32, 32}}, func(tp *Tape, in []*Var) *Var { return tp.ReLU(in[0]) })
}

func BenchmarkOpGELU(b *testing.B) {
	benchOp(b, [][]int{{64, 197, 768}}, func(tp *Tape, in []*Var) *Var { return tp.GELU(in[0]) })
}

func BenchmarkOpSoftmax(b *testing.B) {
	benchOp(b, [][]int{{64, 3, 197, 197}}, func(tp *Tape, in []*Var) *Var { return tp.Softmax(in[0], -1) })
}

func BenchmarkOpLayerNorm(b *testing.B) {
	benchOp(b, [][]int{{64, 197, 192}, {192}, {192}}, func(tp *Tape, in []*Var) *Var { return tp.LayerNorm(in[0], in[1], in[2], 1e-6) })
}

func BenchmarkOpTransposeHeads(b *testing.B) {
	benchOp(b, [][]int{{64, 197, 3, 64}}, func(tp *Tape, in []*Var) *Var { return tp.Transpose(in[0], 0, 2, 1, 3) })
}

func BenchmarkOpTransposeLast2(b *testing.B) {
	benchOp(b, [][]int{{64, 192, 196}}, func(tp *Tape, in []*Var) *Var { return tp.Transpose(in[0], 0, 2, 1) })
}

func BenchmarkOpMeanTokens(b *testing.B) {
	benchOp(b, [][]int{{64, 197, 192}}, func(tp *Tape, in []*Var) *Var { return tp.Mean(in[0], []int{1}, false) })
}

func BenchmarkOpCrossEntropy(b *testing.B) {
	targets := make([]int, 64*128)
	for i := range targets {
		targets[i] = (i * 31) % 1000
	}
	benchOp(b, [][]int{{64 * 128, 1000}}, func(tp *Tape, in []*Var) *Var { return tp.CrossEntropy(in[0], targets) })
}
