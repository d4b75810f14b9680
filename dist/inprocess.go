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
//
// Abort, and a collective that waits past the timeout (DefaultTimeout
// here; see SetTimeout), fail every rank's collectives from then on: the
// world is over, as an MPI job would be.
func NewInProcess(k int) ([]*Comm, error) {
	if k < 1 {
		return nil, fmt.Errorf("dist: an in-process world of %d ranks: want at least 1", k)
	}
	h := &hub{k: k, slots: make([]any, k)}
	h.cond = sync.NewCond(&h.mu)
	comms := make([]*Comm, k)
	for r := range comms {
		comms[r] = &Comm{rank: r, size: k, name: fmt.Sprintf("in-process, %d goroutine ranks", k), b: &inProcess{h: h, rank: r}}
		comms[r].SetTimeout(DefaultTimeout)
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
	abortBy int   // the rank that aborted the world, when aborted is not nil
	aborted error // its reason
}

// abort ends the world: every exchange waiting or to come fails.
func (h *hub) abort(rank int, cause error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.aborted == nil {
		h.abortBy, h.aborted = rank, cause
		h.cond.Broadcast()
	}
}

func (h *hub) abortErr(rank int) error {
	if rank == h.abortBy {
		return &abortError{by: -1, cause: h.aborted}
	}
	return &abortError{by: h.abortBy, cause: h.aborted}
}

func (h *hub) exchange(rank int, v any) ([]any, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for h.leaving > 0 && h.aborted == nil {
		h.cond.Wait()
	}
	if h.aborted != nil {
		return nil, h.abortErr(rank)
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
			if h.aborted != nil {
				return nil, h.abortErr(rank)
			}
			h.cond.Wait()
		}
	}
	res := h.result
	if h.leaving--; h.leaving == 0 {
		h.cond.Broadcast()
	}
	return res, nil
}

// inProcess is one rank's backend in an in-process world. Deposits are
// copies, since the other ranks read them while this one overwrites its
// buffer with the result.
type inProcess struct {
	h    *hub
	rank int
}

func (b *inProcess) allreduceSum(buf []float32) error {
	all, err := b.h.exchange(b.rank, slices.Clone(buf))
	if err != nil {
		return err
	}
	clear(buf)
	for _, v := range all {
		for i, x := range v.([]float32) {
			buf[i] += x
		}
	}
	return nil
}

func (b *inProcess) lenRange(n int) (lo, hi int, err error) {
	all, err := b.h.exchange(b.rank, n)
	if err != nil {
		return 0, 0, err
	}
	lo, hi = n, n
	for _, v := range all {
		lo, hi = min(lo, v.(int)), max(hi, v.(int))
	}
	return lo, hi, nil
}

func (b *inProcess) allgather(send, recv []float32) error {
	all, err := b.h.exchange(b.rank, slices.Clone(send))
	if err != nil {
		return err
	}
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
	all, err := b.h.exchange(b.rank, mine)
	if err != nil {
		return err
	}
	copy(buf, all[root].([]float32))
	return nil
}

func (b *inProcess) barrier() error {
	_, err := b.h.exchange(b.rank, nil)
	return err
}

func (b *inProcess) finalize() error { return nil }

// abort fails the collectives of every rank; an in-process world ends no
// process, so line goes unsaid (the ranks' errors carry it).
func (b *inProcess) abort(cause error, _ string) { b.h.abort(b.rank, cause) }
