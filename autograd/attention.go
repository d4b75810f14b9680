package autograd

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/sslzoo/sslzoo/tensor"
)

// HeadLayout says where multi-head attention finds its operands inside
// row-major [Batch, Tokens, ·] buffers: head h of token t of item b reads
// Q at q[QOff + (b·Tokens + t)·QStride + h·HeadDim], and likewise K and V,
// and writes its HeadDim outputs at out[(b·Tokens + t)·OutStride +
// h·HeadDim]. One fused QKV projection is then three offsets into the
// same buffer, with no slices, reshapes or transposes between.
type HeadLayout struct {
	Batch, Tokens, Heads, HeadDim int
	QStride, KStride, VStride     int
	QOff, KOff, VOff              int
	OutStride                     int
	Scale                         float32 // applied to Q·Kᵀ before the softmax
}

// check reports a layout whose reads or writes would leave the slices.
func (l HeadLayout) check(out, q, k, v []float32) error {
	if l.Batch < 0 || l.Tokens < 1 || l.Heads < 1 || l.HeadDim < 1 {
		return fmt.Errorf("attention: bad layout %d items × %d tokens × %d heads × %d", l.Batch, l.Tokens, l.Heads, l.HeadDim)
	}
	width := l.Heads * l.HeadDim
	rows := l.Batch * l.Tokens
	for _, x := range []struct {
		name        string
		buf         []float32
		off, stride int
	}{{"Q", q, l.QOff, l.QStride}, {"K", k, l.KOff, l.KStride}, {"V", v, l.VOff, l.VStride}, {"output", out, 0, l.OutStride}} {
		if x.off < 0 || x.stride < width {
			return fmt.Errorf("attention: %s row stride %d (offset %d) holds fewer than %d heads × %d", x.name, x.stride, x.off, l.Heads, l.HeadDim)
		}
		if rows > 0 && x.off+(rows-1)*x.stride+width > len(x.buf) {
			return fmt.Errorf("attention: %s has %d values, the layout reads %d", x.name, len(x.buf), x.off+(rows-1)*x.stride+width)
		}
	}
	return nil
}

// attentionScratch holds one part's score rows, reused across calls.
var attentionScratch sync.Pool

// Attention computes softmax(Scale·Q·Kᵀ)·V for every item and head of l,
// without a tape: it is the Go engine's fused form of a transformer's
// attention core, forward only. The work splits over items, heads and
// blocks of query rows, each block one product for its scores, a softmax
// per row, and one product with V, so that batch 1's few heads still fill
// every core.
func Attention(out, q, k, v []float32, l HeadLayout) error {
	if err := l.check(out, q, k, v); err != nil {
		return err
	}
	n, d := l.Tokens, l.HeadDim
	// Enough row blocks for four parts per core, but no block under 16 rows.
	blocks := 1
	if units := l.Batch * l.Heads; units > 0 {
		want := (4*runtime.GOMAXPROCS(0) + units - 1) / units
		blocks = max(1, min(want, n/16))
	}
	rowsPer := (n + blocks - 1) / blocks
	parts := l.Batch * l.Heads * blocks
	tensor.Parallel(parts, 2*rowsPer*n*d, func(lo, hi int) {
		need := 2 * rowsPer * n
		buf, _ := attentionScratch.Get().(*[]float32)
		if buf == nil || cap(*buf) < need {
			s := make([]float32, need)
			buf = &s
		}
		scores, probs := (*buf)[:rowsPer*n], (*buf)[rowsPer*n:need]
		for p := lo; p < hi; p++ {
			b, rest := p/(l.Heads*blocks), p%(l.Heads*blocks)
			h, blk := rest/blocks, rest%blocks
			r0 := blk * rowsPer
			m := min(rowsPer, n-r0)
			if m <= 0 {
				continue
			}
			row0 := b * n
			col := h * d
			qs := q[l.QOff+(row0+r0)*l.QStride+col:]
			ks := k[l.KOff+row0*l.KStride+col:]
			vs := v[l.VOff+row0*l.VStride+col:]
			tensor.Sgemm(false, true, m, n, d, l.Scale, qs, l.QStride, ks, l.KStride, 0, scores, n)
			sm, pm := scores[:m*n], probs[:m*n]
			if !tensor.SoftmaxRows(pm, sm, n) {
				for r := range m {
					softmaxRow(pm[r*n:(r+1)*n], sm[r*n:(r+1)*n], false)
				}
			}
			tensor.Sgemm(false, false, m, d, n, 1, pm, n, vs, l.VStride, 0, out[(row0+r0)*l.OutStride+col:], l.OutStride)
		}
		attentionScratch.Put(buf)
	})
	return nil
}
