package dist

import (
	"errors"
	"fmt"
)

// DefaultBucketBytes is PyTorch DDP's default bucket_cap_mb, 25 MiB.
const DefaultBucketBytes = 25 << 20

// Reducer allreduces a model's gradients: it packs consecutive small tensors
// into buckets of up to a fixed size and reduces each bucket in one call, so
// that a model with hundreds of tensors makes a few calls per step, not
// hundreds, each paying the network's latency. A tensor at least as large as
// a bucket is reduced in place, without a copy.
//
// It keeps one staging buffer between calls, so a training loop that reuses
// the Reducer touches no fresh memory after its first step. Not safe for
// concurrent use.
type Reducer struct {
	reduce   func([]float32) error // the sum over ranks, in place
	size     int
	capElems int
	stage    []float32
}

// NewReducer returns a Reducer over c with buckets of bucketBytes bytes;
// bucketBytes ≤ 0 means DefaultBucketBytes.
func NewReducer(c *Comm, bucketBytes int) *Reducer {
	return newReducer(func(b []float32) error { return c.allreduce(b, false) }, c.Size(), bucketBytes)
}

func newReducer(reduce func([]float32) error, size, bucketBytes int) *Reducer {
	if bucketBytes <= 0 {
		bucketBytes = DefaultBucketBytes
	}
	return &Reducer{reduce: reduce, size: size, capElems: max(1, bucketBytes/4)}
}

// AllreduceSum replaces every tensor by its element-wise sum over ranks.
// Every rank must pass tensors of the same lengths in the same order.
func (r *Reducer) AllreduceSum(tensors [][]float32) error { return r.run(tensors, false) }

// AllreduceMean replaces every tensor by its element-wise mean over ranks,
// which is how data-parallel gradients are combined.
func (r *Reducer) AllreduceMean(tensors [][]float32) error { return r.run(tensors, true) }

func (r *Reducer) run(tensors [][]float32, mean bool) error {
	if r.size == 1 {
		return nil // the sum and the mean over one rank are the identity
	}
	k := float32(r.size)
	return eachBucket(tensors, r.capElems, func(lo, hi, elems int) error {
		fail := func(err error) error {
			if errors.Is(err, ErrFinalized) {
				return err
			}
			return fmt.Errorf("dist: gradient bucket of tensors %d-%d: %w", lo, hi-1, err)
		}
		if elems == 0 {
			return nil // every rank plans the same buckets, so all skip it
		}
		if hi-lo == 1 {
			t := tensors[lo]
			if err := r.reduce(t); err != nil {
				return fail(err)
			}
			if mean {
				for i := range t {
					t[i] /= k
				}
			}
			return nil
		}
		if cap(r.stage) < elems {
			r.stage = make([]float32, elems)
		}
		buf := r.stage[:elems]
		off := 0
		for _, t := range tensors[lo:hi] {
			off += copy(buf[off:], t)
		}
		if err := r.reduce(buf); err != nil {
			return fail(err)
		}
		off = 0
		for _, t := range tensors[lo:hi] {
			src := buf[off : off+len(t)]
			if mean {
				for i, v := range src {
					t[i] = v / k
				}
			} else {
				copy(t, src)
			}
			off += len(t)
		}
		return nil
	})
}

// eachBucket splits tensors, in order, into runs tensors[lo:hi] of at most
// capElems floats in all, each as long as it can be; a tensor longer than
// capElems is a run of its own. Plain greedy packing, so every rank given the
// same lengths makes the same runs.
func eachBucket(tensors [][]float32, capElems int, f func(lo, hi, elems int) error) error {
	lo, elems := 0, 0
	for i, t := range tensors {
		if i > lo && elems+len(t) > capElems {
			if err := f(lo, i, elems); err != nil {
				return err
			}
			lo, elems = i, 0
		}
		elems += len(t)
	}
	if lo < len(tensors) {
		return f(lo, len(tensors), elems)
	}
	return nil
}
