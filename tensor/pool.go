package tensor

import "unsafe"

// Pool recycles float32 buffers by exact length. A training step allocates
// the same shapes every iteration, so after the first step almost every
// buffer comes from the pool: no fresh pages (about 12 us each to fault in
// on these VMs) and nothing for the garbage collector to chase.
//
// A Pool is not safe for concurrent use; each autograd tape owns one.
type Pool struct {
	free  map[int][][]float32
	bytes int64 // bytes currently parked in the pool
}

// NewPool returns an empty pool.
func NewPool() *Pool { return &Pool{free: map[int][][]float32{}} }

// Get returns a buffer of length n with undefined contents.
func (p *Pool) Get(n int) []float32 {
	if l := p.free[n]; len(l) > 0 {
		b := l[len(l)-1]
		p.free[n] = l[:len(l)-1]
		p.bytes -= int64(4 * n)
		return b
	}
	return make([]float32, n)
}

// GetZeroed returns a zero-filled buffer of length n.
func (p *Pool) GetZeroed(n int) []float32 {
	b := p.Get(n)
	clear(b)
	return b
}

// Put hands a buffer back for reuse. The caller must not touch it again.
func (p *Pool) Put(b []float32) {
	if cap(b) == 0 {
		return
	}
	b = b[:cap(b)]
	p.free[len(b)] = append(p.free[len(b)], b)
	p.bytes += int64(4 * len(b))
}

// ParkedBytes is how many bytes sit unused in the pool.
func (p *Pool) ParkedBytes() int64 { return p.bytes }

// BufferID identifies the backing array of b by the address just past its
// end, which every subslice of it shares (so a view and its source match).
// It is 0 for a slice with no capacity.
func BufferID(b []float32) uintptr {
	if cap(b) == 0 {
		return 0
	}
	return uintptr(unsafe.Pointer(unsafe.SliceData(b[:cap(b)]))) + uintptr(cap(b))*4
}
