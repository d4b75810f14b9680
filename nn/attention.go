package nn

import (
	"math"
	"math/rand/v2"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/tensor"
)

// Attention is multi-head scaled dot-product attention on projected inputs:
// q [B,Tq,D], k and v [B,Tk,D], D split into heads of D/heads features.
// mask, when not nil, is added to the attention logits and must broadcast
// to [B,heads,Tq,Tk]: [B,1,1,Tk] for key padding (0 to keep, -inf or a
// large negative number to drop), [Tq,Tk] for a causal mask. The result is
// [B,Tq,D] with the heads concatenated, ready for the output projection.
// The ViT and BERT blocks and MultiheadAttention all share this.
func Attention(tp *autograd.Tape, q, k, v *autograd.Var, heads int, mask *autograd.Var) *autograd.Var {
	return AttentionDropout(tp, q, k, v, heads, mask, 0, false, nil)
}

// AttentionDropout is Attention with dropout p on the attention weights
// while training (BERT's attention_probs_dropout_prob).
func AttentionDropout(tp *autograd.Tape, q, k, v *autograd.Var, heads int, mask *autograd.Var, p float32, training bool, rng *rand.Rand) *autograd.Var {
	qs, ks, vs := q.Value.Shape, k.Value.Shape, v.Value.Shape
	if len(qs) != 3 || len(ks) != 3 || len(vs) != 3 {
		autograd.Failf("Attention", "q %v, k %v, v %v must all be [B,T,D]", qs, ks, vs)
	}
	b, tq, d := qs[0], qs[1], qs[2]
	tk := ks[1]
	if ks[0] != b || vs[0] != b || ks[2] != d || vs[2] != d || vs[1] != tk {
		autograd.Failf("Attention", "q %v, k %v, v %v: need q [B,Tq,D] and k, v [B,Tk,D]", qs, ks, vs)
	}
	if heads <= 0 || d%heads != 0 {
		autograd.Failf("Attention", "model width %d does not split into %d heads", d, heads)
	}
	dh := d / heads
	split := func(x *autograd.Var, t int) *autograd.Var {
		return tp.Transpose(tp.Reshape(x, b, t, heads, dh), 0, 2, 1, 3) // [B,H,T,dh]
	}
	// Scaling q rather than the logits is what PyTorch does, and it touches
	// fewer elements when Tk > dh.
	qh := split(tp.MulScalar(q, float32(1/math.Sqrt(float64(dh)))), tq)
	kh, vh := split(k, tk), split(v, tk)
	logits := tp.MatMulT(qh, kh, false, true) // [B,H,Tq,Tk]
	if mask != nil {
		logits = tp.Add(logits, mask)
	}
	w := tp.Softmax(logits, -1)
	w = tp.Dropout(w, p, training, rng)
	o := tp.MatMul(w, vh) // [B,H,Tq,dh]
	return tp.Reshape(tp.Transpose(o, 0, 2, 1, 3), b, tq, d)
}

// KeyPaddingMask builds an additive attention mask [B,1,1,T] from a
// key_padding_mask as PyTorch takes it: pad[b*T+t] true means key t of
// sequence b is padding and gets no attention.
func KeyPaddingMask(pad []bool, b, t int) *autograd.Var {
	if len(pad) != b*t {
		autograd.Failf("KeyPaddingMask", "%d flags for B=%d, T=%d", len(pad), b, t)
	}
	m := tensor.New(b, 1, 1, t)
	for i, p := range pad {
		if p {
			m.Data[i] = float32(math.Inf(-1))
		}
	}
	return autograd.Const(m)
}

// MultiheadAttention is torch.nn.MultiheadAttention with its parameter
// names (in_proj_weight, in_proj_bias, out_proj.weight, out_proj.bias).
// Inputs are batch-first, [B,T,E], as with batch_first=True in PyTorch.
type MultiheadAttention struct {
	InProjWeight *autograd.Var // [3E, E]: q, k, v projections stacked
	InProjBias   *autograd.Var // [3E], nil without bias
	OutProj      *Linear
	Heads        int
	// Dropout on the attention weights in training mode (PyTorch's
	// dropout argument); Rng draws its masks.
	Dropout float32
	Rng     *rand.Rand

	eval bool
}

// NewMultiheadAttention builds the layer initialised as PyTorch does:
// xavier_uniform in_proj_weight, zero biases, default Linear init for the
// output projection's weight.
func NewMultiheadAttention(embed, heads int, bias bool, rng *rand.Rand) *MultiheadAttention {
	checkDims("MultiheadAttention", embed, heads)
	if embed%heads != 0 {
		autograd.Failf("MultiheadAttention", "embed_dim %d is not divisible by num_heads %d", embed, heads)
	}
	m := &MultiheadAttention{
		InProjWeight: autograd.NewParam("in_proj_weight", tensor.New(3*embed, embed)),
		OutProj:      NewLinear(embed, embed, bias, rng),
		Heads:        heads,
	}
	mustInit(XavierUniform(m.InProjWeight.Value, 1, rng))
	if bias {
		m.InProjBias = autograd.NewParam("in_proj_bias", tensor.New(3*embed))
		m.OutProj.Bias.Value.Zero()
	}
	return m
}

// Forward attends from query [B,Tq,E] to key/value [B,Tk,E] with an
// optional additive mask (see Attention). Passing the same Var as query,
// key and value (self-attention) projects all three with one GEMM.
func (m *MultiheadAttention) Forward(tp *autograd.Tape, query, key, value, mask *autograd.Var) *autograd.Var {
	e := m.InProjWeight.Value.Shape[1]
	var q, k, v *autograd.Var
	if query == key && key == value {
		qkv := tp.Linear(query, m.InProjWeight, m.InProjBias)
		q, k, v = tp.Slice(qkv, -1, 0, e), tp.Slice(qkv, -1, e, 2*e), tp.Slice(qkv, -1, 2*e, 3*e)
	} else {
		proj := func(x *autograd.Var, i int) *autograd.Var {
			w := tp.Slice(m.InProjWeight, 0, i*e, (i+1)*e)
			var b *autograd.Var
			if m.InProjBias != nil {
				b = tp.Slice(m.InProjBias, 0, i*e, (i+1)*e)
			}
			return tp.Linear(x, w, b)
		}
		q, k, v = proj(query, 0), proj(key, 1), proj(value, 2)
	}
	o := AttentionDropout(tp, q, k, v, m.Heads, mask, m.Dropout, !m.eval, m.Rng)
	return m.OutProj.Forward(tp, o)
}

func (m *MultiheadAttention) CollectState(prefix string, s *State) {
	s.Params = append(s.Params, Param{Join(prefix, "in_proj_weight"), m.InProjWeight})
	if m.InProjBias != nil {
		s.Params = append(s.Params, Param{Join(prefix, "in_proj_bias"), m.InProjBias})
	}
	m.OutProj.CollectState(Join(prefix, "out_proj"), s)
}

func (m *MultiheadAttention) SetTraining(on bool) { m.eval = !on }
