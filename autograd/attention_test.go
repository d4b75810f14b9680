package autograd

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/tensor"
)

// naiveAttention is the same computation in float64, one head at a time,
// from the definition.
func naiveAttention(qkv []float32, l HeadLayout) []float64 {
	n, d := l.Tokens, l.HeadDim
	out := make([]float64, l.Batch*n*l.OutStride)
	for b := range l.Batch {
		for h := range l.Heads {
			at := func(off, stride, t, j int) float64 {
				return float64(qkv[off+(b*n+t)*stride+h*d+j])
			}
			for i := range n {
				s := make([]float64, n)
				m := math.Inf(-1)
				for t := range n {
					for j := range d {
						s[t] += at(l.QOff, l.QStride, i, j) * at(l.KOff, l.KStride, t, j)
					}
					s[t] *= float64(l.Scale)
					if mk := l.Mask; mk != nil {
						s[t] += float64(mk.Data[b*mk.BatchStride+h*mk.HeadStride+i*mk.RowStride+t*mk.ColStride])
					}
					m = max(m, s[t])
				}
				var z float64
				for t := range s {
					s[t] = math.Exp(s[t] - m)
					z += s[t]
				}
				for j := range d {
					var acc float64
					for t := range n {
						acc += s[t] / z * at(l.VOff, l.VStride, t, j)
					}
					out[(b*n+i)*l.OutStride+h*d+j] = acc
				}
			}
		}
	}
	return out
}

func TestAttentionMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct {
		batch, tokens, heads, dim int
		mask                      []int // the mask's shape; nil for none
	}{
		{1, 197, 3, 64, nil}, // ViT-tiny at batch 1: row blocks split the heads
		{2, 5, 2, 8, nil},
		{3, 17, 1, 4, nil},
		{2, 5, 2, 8, []int{2, 1, 1, 5}}, // BERT's padding bias
		{3, 6, 2, 4, []int{6, 6}},       // one mask for every item and head
		{2, 4, 3, 4, []int{2, 3, 4, 1}}, // a bias per query row
	} {
		width := c.heads * c.dim
		// One fused projection [batch, tokens, 3·width], as ViT's qkv Linear
		// writes it, and an output with a wider stride than it needs.
		l := HeadLayout{Batch: c.batch, Tokens: c.tokens, Heads: c.heads, HeadDim: c.dim,
			QStride: 3 * width, KStride: 3 * width, VStride: 3 * width,
			QOff: 0, KOff: width, VOff: 2 * width, OutStride: width + 3,
			Scale: float32(1 / math.Sqrt(float64(c.dim)))}
		qkv := make([]float32, c.batch*c.tokens*3*width)
		for i := range qkv {
			qkv[i] = float32(rng.NormFloat64() * 2)
		}
		if c.mask != nil {
			m := tensor.New(c.mask...)
			for i := range m.Data {
				m.Data[i] = float32(rng.NormFloat64() * 3)
			}
			var err error
			if l.Mask, err = BroadcastMask(m, l); err != nil {
				t.Fatal(err)
			}
		}
		out := make([]float32, c.batch*c.tokens*l.OutStride)
		for i := range out {
			out[i] = 7 // the padding columns must survive
		}
		if err := Attention(out, qkv, qkv, qkv, l); err != nil {
			t.Fatal(err)
		}
		want := naiveAttention(qkv, l)
		for i, w := range want {
			if i%l.OutStride >= width {
				if out[i] != 7 {
					t.Fatalf("%+v: padding at %d overwritten with %v", c, i, out[i])
				}
				continue
			}
			if math.Abs(float64(out[i])-w) > 1e-5*(1+math.Abs(w)) {
				t.Fatalf("%+v: out[%d] = %v, want %v", c, i, out[i], w)
			}
		}
	}
}

func TestBroadcastMaskRefuses(t *testing.T) {
	l := HeadLayout{Batch: 2, Tokens: 4, Heads: 3, HeadDim: 2}
	for _, shape := range [][]int{{2, 2, 1, 4}, {4, 3}, {1, 2, 3, 4, 4}} {
		if _, err := BroadcastMask(tensor.New(shape...), l); err == nil {
			t.Errorf("mask %v for scores [2 3 4 4]: no error", shape)
		}
	}
}

func TestAttentionRefusesShortBuffers(t *testing.T) {
	l := HeadLayout{Batch: 1, Tokens: 4, Heads: 2, HeadDim: 3, QStride: 6, KStride: 6, VStride: 6, OutStride: 6, Scale: 1}
	buf := make([]float32, 24)
	if err := Attention(buf, buf, buf, buf[:23], l); err == nil || !strings.Contains(err.Error(), "V has 23 values") {
		t.Fatalf("short V: %v", err)
	}
	l.KStride = 5
	if err := Attention(buf, buf, buf, buf, l); err == nil || !strings.Contains(err.Error(), "K row stride 5") {
		t.Fatalf("narrow K stride: %v", err)
	}
}
