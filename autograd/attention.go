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
	Mask                          *ScoreMask
}

// ScoreMask is added to the scaled scores before the softmax (a padding
// mask's large negative bias, say): score (b, h, i, j) of item b, head h,
// query i and key j gets Data[b·BatchStride + h·HeadStride + i·RowStride +
// j·ColStride]. A zero stride repeats the mask along that axis.
type ScoreMask struct {
	Data                                          []float32
	BatchStride, HeadStride, RowStride, ColStride int
}

// BroadcastMask views m, a tensor that broadcasts to the scores'
// [Batch, Heads, Tokens, Tokens] under NumPy rules (a padding mask
// [Batch, 1, 1, Tokens], or one [Tokens, Tokens] for all), as a ScoreMask.
func BroadcastMask(m *tensor.Tensor, l HeadLayout) (*ScoreMask, error) {
	full := []int{l.Batch, l.Heads, l.Tokens, l.Tokens}
	if len(m.Shape) > 4 {
		return nil, fmt.Errorf("mask %v has more axes than the scores %v", m.Shape, full)
	}
	shape := []int{1, 1, 1, 1} // the axes the mask lacks lead, of size 1
	copy(shape[4-len(m.Shape):], m.Shape)
	var strides [4]int
	step := 1
	for i := 3; i >= 0; i-- {
		switch shape[i] {
		case full[i]:
			strides[i] = step
		case 1:
			strides[i] = 0
		default:
			return nil, fmt.Errorf("mask %v does not broadcast to the scores %v", m.Shape, full)
		}
		if full[i] == 1 {
			strides[i] = 0
		}
		step *= shape[i]
	}
	if step != len(m.Data) {
		return nil, fmt.Errorf("mask %v holds %d values", m.Shape, len(m.Data))
	}
	return &ScoreMask{Data: m.Data, BatchStride: strides[0], HeadStride: strides[1], RowStride: strides[2], ColStride: strides[3]}, nil
}

// add adds the mask's rows for queries r0.. of item b, head h to the m×n
// scores.
func (s *ScoreMask) add(scores []float32, b, h, r0, m, n int) {
	for r := range m {
		row := scores[r*n : (r+1)*n]
		at := b*s.BatchStride + h*s.HeadStride + (r0+r)*s.RowStride
		if s.ColStride == 0 {
			v := s.Data[at]
			for j := range row {
				row[j] += v
			}
			continue
		}
		for j, v := range s.Data[at : at+n] {
			row[j] += v
		}
	}
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
			if l.Mask != nil {
				l.Mask.add(scores, b, h, r0, m, n)
			}
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
