package autograd

import (
	"runtime"

	"github.com/sslzoo/sslzoo/tensor"
)

// Strided iteration shared by the element-wise, reduction and permute ops.
//
// An op walks an iteration shape (usually its output's) with up to maxOps
// operands, each described by per-axis element strides; a stride of 0 means
// the operand is broadcast along that axis. makePlan drops size-1 axes and
// merges neighbouring axes that every operand walks contiguously, so that
// the common cases collapse to one long inner loop: same shapes become one
// axis, [B,T,D]+[D] becomes [B*T, D], and [N,C,H,W]*[1,C,1,1] becomes
// [N, C, H*W] with a scalar inner operand.

const maxOps = 4

// parallelMin is the least work (element operations) for which we split a
// loop over goroutines ourselves (tensor.Parallel applies its own threshold).
const parallelMin = 1 << 15

type plan struct {
	dims  []int         // coalesced iteration shape; never empty
	st    [maxOps][]int // per operand, per axis strides
	nops  int
	rows  int // product of dims[:len(dims)-1]
	inner int // dims[len(dims)-1]
}

// contiguousStrides returns the row-major strides of shape.
func contiguousStrides(shape []int) []int {
	st := make([]int, len(shape))
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		st[i] = s
		s *= shape[i]
	}
	return st
}

// broadcastStrides returns the strides that walk a contiguous tensor of
// shape while iterating over out, which shape broadcasts to (numpy rules:
// right-aligned, size-1 or missing axes repeat).
func broadcastStrides(shape, out []int) []int {
	st := make([]int, len(out))
	s := 1
	for i := 1; i <= len(shape); i++ {
		d := shape[len(shape)-i]
		if d != 1 {
			st[len(out)-i] = s
		}
		s *= d
	}
	return st
}

// broadcastShape is the numpy broadcast of a and b, or a Failf for op.
func broadcastShape(op string, a, b []int) []int {
	n := max(len(a), len(b))
	out := make([]int, n)
	for i := 1; i <= n; i++ {
		da, db := 1, 1
		if i <= len(a) {
			da = a[len(a)-i]
		}
		if i <= len(b) {
			db = b[len(b)-i]
		}
		switch {
		case da == db || db == 1:
			out[n-i] = da
		case da == 1:
			out[n-i] = db
		default:
			Failf(op, "shapes %v and %v do not broadcast (axis %d: %d vs %d)", a, b, n-i, da, db)
		}
	}
	return out
}

// makePlan builds the coalesced iteration over shape for operands with the
// given strides (each len(shape) long).
func makePlan(shape []int, strides ...[]int) *plan {
	p := &plan{nops: len(strides)}
	keep := make([]int, 0, len(shape))
	for i, d := range shape {
		if d != 1 {
			keep = append(keep, i)
		}
	}
	for k := range strides {
		p.st[k] = make([]int, 0, len(keep))
	}
	for _, i := range keep {
		if n := len(p.dims); n > 0 {
			mergeable := true
			for k, s := range strides {
				if p.st[k][n-1] != s[i]*shape[i] {
					mergeable = false
					break
				}
			}
			if mergeable {
				p.dims[n-1] *= shape[i]
				for k, s := range strides {
					p.st[k][n-1] = s[i]
				}
				continue
			}
		}
		p.dims = append(p.dims, shape[i])
		for k, s := range strides {
			p.st[k] = append(p.st[k], s[i])
		}
	}
	if len(p.dims) == 0 {
		p.dims = []int{1}
		for k := range strides {
			p.st[k] = []int{0}
		}
	}
	p.inner = p.dims[len(p.dims)-1]
	p.rows = 1
	for _, d := range p.dims[:len(p.dims)-1] {
		p.rows *= d
	}
	return p
}

// innerStride is operand k's stride along the inner axis.
func (p *plan) innerStride(k int) int { return p.st[k][len(p.dims)-1] }

// racy reports whether operand k is written at the same place by two
// different rows, so rows cannot be split across goroutines while writing it.
func (p *plan) racy(k int) bool {
	for d := 0; d < len(p.dims)-1; d++ {
		if p.st[k][d] == 0 {
			return true
		}
	}
	return false
}

// cursor tracks every operand's offset at the start of one row.
type cursor struct {
	p   *plan
	idx []int
	off [maxOps]int
}

func (p *plan) cursorAt(r int) cursor {
	c := cursor{p: p, idx: make([]int, len(p.dims)-1)}
	for d := len(p.dims) - 2; d >= 0; d-- {
		i := r % p.dims[d]
		r /= p.dims[d]
		c.idx[d] = i
		for k := 0; k < p.nops; k++ {
			c.off[k] += i * p.st[k][d]
		}
	}
	return c
}

func (c *cursor) next() {
	p := c.p
	for d := len(c.idx) - 1; d >= 0; d-- {
		c.idx[d]++
		if c.idx[d] < p.dims[d] {
			for k := 0; k < p.nops; k++ {
				c.off[k] += p.st[k][d]
			}
			return
		}
		for k := 0; k < p.nops; k++ {
			c.off[k] -= p.st[k][d] * (p.dims[d] - 1)
		}
		c.idx[d] = 0
	}
}

// forRows runs fn over row ranges, in parallel when the work is large.
// fn gets a cursor positioned at row lo.
func (p *plan) forRows(cost int, fn func(c *cursor, lo, hi int)) {
	tensor.Parallel(p.rows, p.inner*cost, func(lo, hi int) {
		c := p.cursorAt(lo)
		fn(&c, lo, hi)
	})
}

// forRowsInto runs fn over row ranges that accumulate into operand k's
// buffer dst. When several rows write the same dst elements (a reduction
// over an outer axis), rows are split with splitAccumulate.
func (p *plan) forRowsInto(pool *tensor.Pool, k int, dst []float32, cost int, fn func(c *cursor, lo, hi int, dst []float32)) {
	if !p.racy(k) {
		p.forRows(cost, func(c *cursor, lo, hi int) { fn(c, lo, hi, dst) })
		return
	}
	splitAccumulate(pool, p.rows, p.inner*cost, dst, func(lo, hi int, acc []float32) {
		c := p.cursorAt(lo)
		fn(&c, lo, hi, acc)
	})
}

// splitAccumulate runs fn over [0, n) where every index adds into the
// same small buffer dst (e.g. a bias gradient summed over rows). When the
// work is worth splitting, each worker after the first accumulates into a
// private zeroed copy taken from pool, and the copies are added into dst at
// the end; cost is the work per index.
func splitAccumulate(pool *tensor.Pool, n, cost int, dst []float32, fn func(lo, hi int, acc []float32)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	work := n * cost
	// The private copies cost len(dst) each to clear and merge.
	if workers <= 1 || work < parallelMin || work < 4*len(dst)*workers {
		fn(0, n, dst)
		return
	}
	bufs := make([][]float32, workers)
	bufs[0] = dst
	for w := 1; w < workers; w++ {
		bufs[w] = pool.GetZeroed(len(dst))
	}
	chunk := (n + workers - 1) / workers
	tensor.Parallel(workers, work/workers+1, func(wlo, whi int) {
		for w := wlo; w < whi; w++ {
			if lo, hi := w*chunk, min((w+1)*chunk, n); lo < hi {
				fn(lo, hi, bufs[w])
			}
		}
	})
	for w := 1; w < workers; w++ {
		b := bufs[w][:len(dst)]
		for i, v := range b {
			dst[i] += v
		}
		pool.Put(bufs[w])
	}
}
