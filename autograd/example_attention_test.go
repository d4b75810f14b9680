package autograd_test

import (
	"fmt"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/tensor"
)

// One head over two tokens, reading Q, K and V from a fused projection
// [tokens, 3·dim] as a transformer's qkv layer writes it, with the second
// key masked out for every query.
func ExampleAttention() {
	const tokens, dim = 2, 2
	qkv := []float32{
		// q      k      v
		1, 0, 1, 0, 10, 20, // token 0
		0, 1, 0, 1, 30, 40, // token 1
	}
	l := autograd.HeadLayout{Batch: 1, Tokens: tokens, Heads: 1, HeadDim: dim,
		QStride: 3 * dim, KStride: 3 * dim, VStride: 3 * dim,
		QOff: 0, KOff: dim, VOff: 2 * dim, OutStride: dim, Scale: 1}
	mask, err := autograd.BroadcastMask(&tensor.Tensor{Shape: []int{tokens}, Data: []float32{0, -1e9}}, l)
	if err != nil {
		fmt.Println(err)
		return
	}
	l.Mask = mask
	out := make([]float32, tokens*dim)
	if err := autograd.Attention(out, qkv, qkv, qkv, l); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(out)
	// Output: [10 20 10 20]
}
