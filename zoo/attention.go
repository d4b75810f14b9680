package zoo

import (
	"math"
	"math/rand/v2"

	"github.com/sslzoo/sslzoo/autograd"
)

// attention is multi-head scaled dot-product attention over q, k, v
// [B, T, D] with an optional additive mask broadcastable to [B, heads, T, Tk],
// and dropout on the attention probabilities in training (BERT's
// attention_probs_dropout_prob).
func attention(tp *autograd.Tape, q, k, v *autograd.Var, heads int, mask *autograd.Var, p float32, training bool, rng *rand.Rand) *autograd.Var {
	b, t, d := q.Shape()[0], q.Shape()[1], q.Shape()[2]
	hd := d / heads
	split := func(x *autograd.Var) *autograd.Var { // [B, T, D] -> [B, heads, T, hd]
		return tp.Transpose(tp.Reshape(x, b, x.Shape()[1], heads, hd), 0, 2, 1, 3)
	}
	scores := tp.MulScalar(tp.MatMulT(split(q), split(k), false, true), float32(1/math.Sqrt(float64(hd))))
	if mask != nil {
		scores = tp.Add(scores, mask)
	}
	probs := tp.Softmax(scores, 3)
	if training && p > 0 {
		probs = tp.Dropout(probs, p, true, rng)
	}
	ctx := tp.MatMul(probs, split(v)) // [B, heads, T, hd]
	return tp.Reshape(tp.Transpose(ctx, 0, 2, 1, 3), b, t, d)
}
