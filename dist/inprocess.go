package dist

import (
	"fmt"
	"slices"
	"sync"
)

// NewInProcess returns the k communicators of a world whose ranks are
// goroutines of this process: rank r is element r. It exists so that
// data-parallel code can be tested, and its results compared with a
// one-rank run, without mpirun or MPI. Each rank must be driven by its own
// goroutine, since every collective blocks until all k ranks have called it.
//
// Sums add the ranks' values in rank order, in float32, so every rank gets
// the same bits (MPI's reduction order is its own, but it too gives every
// rank the same result).
func NewInProcess(k int) ([]*Comm, error) {
	if k < 1 {
		return nil, fmt.Errorf("dist: an in-process world of %d ranks: want at least 1", k)
	}
	h := &hub{k: k, slots: make([]any, k)}
	h.cond = sync.NewCond(&h.mu)
	comms := make([]*Comm, k)
	for r := range comms {
		comms[r] = &Comm{rank: r, size: k, name: fmt.Sprintf("in-process, %d goroutine ranks", k), b: &inProcess{h: h, rank: r}}
	}
	return comms, nil
}

// hub is the rendezvous of an in-process world: every collective is one
// exchange, where each rank deposits a value and gets all k of them back.
type hub struct {
	mu      sync.Mutex
	cond    *sync.Cond
	k       int
	slots   []any // this round's deposits, by rank
	arrived int
	round   int
	result  []any // the last complete round's deposits
	leaving int   // ranks yet to pick up result; a new round waits for 0
}

func (h *hub) exchange(rank int, v any) []any {
	h.mu.Lock()
	defer h.mu.Unlock()
	for h.leaving > 0 {
		h.cond.Wait()
	}
	h.slots[rank] = v
	h.arrived++
	if h.arrived == h.k {
		h.result = slices.Clone(h.slots)
		h.arrived, h.leaving = 0, h.k
		h.round++
		h.cond.Broadcast()
	} else {
		for r := h.round; h.round == r; {
			h.cond.Wait()
		}
	}
	res := h.result
	if h.leaving--; h.leaving == 0 {
		h.cond.Broadcast()
	}
	return res
}

// inProcess is one rank's backend in an in-process world. Deposits are
// copies, since the other ranks read them while this one overwrites its
// buffer with the result.
type inProcess struct {
	h    *hub
	rank int
}

func (b *inProcess) allreduceSum(buf []float32) error {
	all := b.h.exchange(b.rank, slices.Clone(buf))
	clear(buf)
	for _, v := range all {
		for i, x := range v.([]float32) {
			buf[i] += x
		}
	}
	return nil
}

func (b *inProcess) lenRange(n int) (lo, hi int, err error) {
	all := b.h.exchange(b.rank, n)
	lo, hi = n, n
	for _, v := range all {
		lo, hi = min(lo, v.(int)), max(hi, v.(int))
	}
	return lo, hi, nil
}

func (b *inProcess) allgather(send, recv []float32) error {
	all := b.h.exchange(b.rank, slices.Clone(send))
	for r, v := range all {
		copy(recv[r*len(send):], v.([]float32))
	}
	return nil
}

func (b *inProcess) bcast(buf []float32, root int) error {
	var mine any
	if b.rank == root {
		mine = slices.Clone(buf)
	}
	all := b.h.exchange(b.rank, mine)
	copy(buf, all[root].([]float32))
	return nil
}

func (b *inProcess) barrier() error {
	b.h.exchange(b.rank, nil)
	return nil
}

func (b *inProcess) finalize() error { return nil }
