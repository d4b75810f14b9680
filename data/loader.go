package data

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sslzoo/sslzoo/data/augment"
	"github.com/sslzoo/sslzoo/tensor"
)

// LoaderConfig configures a Loader.
type LoaderConfig struct {
	BatchSize int
	Shuffle   bool
	// Seed fixes the shuffle order and every augmentation draw: the batches
	// of an epoch depend only on (Seed, epoch), never on Workers or timing.
	Seed     uint64
	DropLast bool // drop the last batch when it is not full
	// Workers decode and augment samples in parallel; 0 means GOMAXPROCS.
	Workers int
	// Prefetch is how many batches are prepared (or ready) ahead while the
	// trainer works on the current one; 0 means 2. It bounds the memory.
	Prefetch int
	// Views lists one augmentation pipeline per view; sample i of view v is
	// views[v] applied to image i. Empty means one view, the decoded image.
	Views []augment.Transform
	// Warn receives skipped samples (ErrSkipSample); nil means log.Printf.
	Warn func(error)
	// Order, when set, gives each epoch's sample order in place of the
	// shuffle: Len() of the dataset's indices, repeats allowed (DeepCluster
	// samples uniformly over its pseudo-labels). A sample's augmentation
	// draw still depends only on (Seed, epoch, index), and a repeat of an
	// index within the epoch draws anew (its k-th occurrence is seeded by
	// k too), so the batches stay fixed by the list.
	Order func(epoch int) []int
	// Shards > 1 makes this loader one of that many data-parallel ranks,
	// number Shard: every batch of BatchSize (the global batch, in the
	// same order and with the same augmentation draws as one loader would
	// make) is cut into Shards consecutive runs of rows, and this loader
	// yields run Shard. Together the ranks see exactly a one-loader run.
	Shard, Shards int
}

// Loader turns a Dataset into batches of NCHW float32 tensors.
type Loader struct {
	ds  Dataset
	cfg LoaderConfig

	mu   sync.Mutex
	free map[[4]int][]*tensor.Tensor // recycled batch buffers by shape
}

// NewLoader validates cfg and returns a loader over ds.
func NewLoader(ds Dataset, cfg LoaderConfig) (*Loader, error) {
	if ds == nil || ds.Len() == 0 {
		return nil, errors.New("loader: empty dataset")
	}
	if cfg.BatchSize <= 0 {
		return nil, fmt.Errorf("loader: batch size %d", cfg.BatchSize)
	}
	if cfg.DropLast && ds.Len() < cfg.BatchSize {
		return nil, fmt.Errorf("loader: %d samples make no full batch of %d (DropLast)", ds.Len(), cfg.BatchSize)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 2
	}
	if cfg.Shards < 0 || cfg.Shard < 0 || cfg.Shards > 0 && cfg.Shard >= cfg.Shards || cfg.Shards == 0 && cfg.Shard > 0 {
		return nil, fmt.Errorf("loader: shard %d of %d", cfg.Shard, cfg.Shards)
	}
	if cfg.Shards > cfg.BatchSize {
		return nil, fmt.Errorf("loader: %d shards of a batch of %d leave some empty", cfg.Shards, cfg.BatchSize)
	}
	if len(cfg.Views) == 0 {
		cfg.Views = []augment.Transform{augment.Compose{}}
	}
	if cfg.Warn == nil {
		cfg.Warn = func(err error) { log.Printf("warning: %v", err) }
	}
	return &Loader{ds: ds, cfg: cfg, free: map[[4]int][]*tensor.Tensor{}}, nil
}

// Len is the number of batches per epoch.
func (l *Loader) Len() int {
	n, b := l.ds.Len(), l.cfg.BatchSize
	if l.cfg.DropLast {
		return n / b
	}
	return (n + b - 1) / b
}

// Order returns the sample order of an epoch: LoaderConfig.Order's list
// when it is set, else the (shuffled) dataset order.
func (l *Loader) Order(epoch int) []int {
	if l.cfg.Order != nil {
		return l.cfg.Order(epoch)
	}
	idx := make([]int, l.ds.Len())
	for i := range idx {
		idx[i] = i
	}
	if l.cfg.Shuffle {
		rng := rand.New(rand.NewPCG(l.cfg.Seed, mix(uint64(epoch)^0x5348554646)))
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
	}
	return idx
}

// mix is SplitMix64's finaliser: nearby inputs give unrelated outputs, so
// seeds built from (seed, epoch, index) give independent PCG streams.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// SampleRNG is the generator that augments sample index in an epoch.
func (l *Loader) SampleRNG(epoch, index int) *rand.Rand { return l.sampleRNG(epoch, index, 0) }

// sampleRNG is SampleRNG for the rep-th repeat (from 0) of index within
// an epoch whose LoaderConfig.Order lists it more than once.
func (l *Loader) sampleRNG(epoch, index, rep int) *rand.Rand {
	stream := mix(uint64(index))
	if rep > 0 {
		stream = mix(stream ^ mix(uint64(rep)|1<<63))
	}
	return rand.New(rand.NewPCG(mix(l.cfg.Seed^mix(uint64(epoch))), stream))
}

// checkOrder validates an epoch's LoaderConfig.Order list and returns
// each entry's repeat number (nil when no index repeats).
func (l *Loader) checkOrder(order []int) ([]int, error) {
	n := l.ds.Len()
	if len(order) != n {
		return nil, fmt.Errorf("the epoch's order lists %d samples, want the dataset's %d", len(order), n)
	}
	seen := make([]int32, n)
	var reps []int
	for i, idx := range order {
		if idx < 0 || idx >= n {
			return nil, fmt.Errorf("the epoch's order entry %d is sample %d, outside [0, %d)", i, idx, n)
		}
		if k := seen[idx]; k > 0 {
			if reps == nil {
				reps = make([]int, n)
			}
			reps[i] = int(k)
		}
		seen[idx]++
	}
	return reps, nil
}

// Batch is one batch: Views[v] is [N, C, H, W] for view v, Labels and
// Indices (dataset positions) have N entries.
type Batch struct {
	Views   []*tensor.Tensor
	Labels  []int
	Indices []int
	loader  *Loader
}

// Release hands the batch's tensors back for reuse by later batches (which
// saves the page faults of fresh buffers). The batch must not be used after.
func (b *Batch) Release() {
	if b == nil || b.loader == nil {
		return
	}
	l := b.loader
	l.mu.Lock()
	for _, t := range b.Views {
		key := [4]int{t.Shape[0], t.Shape[1], t.Shape[2], t.Shape[3]}
		if cap(t.Data) == len(t.Data) && len(l.free[key]) < 4*l.cfg.Prefetch+4 {
			l.free[key] = append(l.free[key], t)
		}
	}
	l.mu.Unlock()
	b.Views, b.loader = nil, nil
}

func (l *Loader) getTensor(n, c, h, w int) *tensor.Tensor {
	key := [4]int{n, c, h, w}
	l.mu.Lock()
	if f := l.free[key]; len(f) > 0 {
		t := f[len(f)-1]
		l.free[key] = f[:len(f)-1]
		l.mu.Unlock()
		return t
	}
	l.mu.Unlock()
	return tensor.New(n, c, h, w)
}

// batchState collects the samples of one batch as workers finish them.
type batchState struct {
	indices []int
	reps    []int // repeat numbers of the indices (nil: none repeats)
	labels  []int
	ok      []bool // false for skipped samples
	views   []*tensor.Tensor
	mu      sync.Mutex // guards views allocation and err
	err     error
	left    atomic.Int32
	done    chan struct{}
}

type job struct {
	b   *batchState
	row int
}

// Iterator yields the batches of one epoch in order.
type Iterator struct {
	l      *Loader
	epoch  int
	ctx    context.Context
	cancel context.CancelFunc
	ready  chan *batchState
	wg     sync.WaitGroup
	closed atomic.Bool

	waited  time.Duration
	batches int
	err     error // a bad LoaderConfig.Order list, returned by Next
}

// Epoch starts the workers for one epoch. Call Close when done (also after
// an error or an early stop); cancelling ctx stops the workers too.
func (l *Loader) Epoch(ctx context.Context, epoch int) *Iterator {
	ctx, cancel := context.WithCancel(ctx)
	it := &Iterator{l: l, epoch: epoch, ctx: ctx, cancel: cancel, ready: make(chan *batchState, l.cfg.Prefetch)}
	jobs := make(chan job, l.cfg.BatchSize)
	order := l.Order(epoch)
	var reps []int
	if l.cfg.Order != nil {
		var err error
		if reps, err = l.checkOrder(order); err != nil {
			it.err = fmt.Errorf("loader epoch %d: %w", epoch, err)
			close(it.ready)
			return it
		}
	}
	nb := l.Len()
	it.wg.Add(1 + l.cfg.Workers)
	go func() {
		defer it.wg.Done()
		defer close(jobs)
		defer close(it.ready)
		for b := 0; b < nb; b++ {
			lo, hi := b*l.cfg.BatchSize, min((b+1)*l.cfg.BatchSize, len(order))
			idx := append([]int(nil), l.shardOf(order[lo:hi])...)
			bs := &batchState{indices: idx, labels: make([]int, len(idx)), ok: make([]bool, len(idx)),
				views: make([]*tensor.Tensor, len(l.cfg.Views)), done: make(chan struct{})}
			if reps != nil {
				bs.reps = l.shardOf(reps[lo:hi])
			}
			bs.left.Store(int32(len(idx)))
			// The send blocks while Prefetch batches wait for the trainer,
			// which bounds the work (and memory) ahead of it.
			select {
			case it.ready <- bs:
			case <-ctx.Done():
				return
			}
			for r := range idx {
				select {
				case jobs <- job{bs, r}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	for range l.cfg.Workers {
		go func() {
			defer it.wg.Done()
			for {
				select {
				case j, ok := <-jobs:
					if !ok {
						return
					}
					it.process(j)
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	return it
}

// shardOf is this loader's run of a global batch's rows.
func (l *Loader) shardOf(rows []int) []int {
	k := l.cfg.Shards
	if k <= 1 {
		return rows
	}
	r, n := l.cfg.Shard, len(rows)
	return rows[r*n/k : (r+1)*n/k]
}

// process decodes and augments one sample into its batch rows.
func (it *Iterator) process(j job) {
	b, l := j.b, it.l
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("sample %d: panic in decode/augment: %v", b.indices[j.row], r)
			}
		}()
		idx := b.indices[j.row]
		img, label, err := l.ds.Get(idx)
		if err != nil {
			return err
		}
		rep := 0
		if b.reps != nil {
			rep = b.reps[j.row]
		}
		rng := l.sampleRNG(it.epoch, idx, rep)
		for v, tr := range l.cfg.Views {
			in := img
			if v < len(l.cfg.Views)-1 {
				in = img.Clone()
			}
			out, err := tr.Apply(in, rng)
			if err != nil {
				return fmt.Errorf("sample %d view %d: %w", idx, v, err)
			}
			t, err := b.view(l, v, out)
			if err != nil {
				return fmt.Errorf("sample %d view %d: %w", idx, v, err)
			}
			n := len(out.Pix)
			copy(t.Data[j.row*n:(j.row+1)*n], out.Pix)
		}
		b.labels[j.row] = label
		b.ok[j.row] = true
		return nil
	}()
	if err != nil {
		if errors.Is(err, ErrSkipSample) {
			l.cfg.Warn(err)
		} else {
			b.mu.Lock()
			if b.err == nil {
				b.err = err
			}
			b.mu.Unlock()
		}
	}
	if b.left.Add(-1) == 0 {
		close(b.done)
	}
}

// view returns the batch tensor of view v, allocating it from the first
// sample's shape; later samples must match it.
func (b *batchState) view(l *Loader, v int, m *augment.Image) (*tensor.Tensor, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.views[v]
	if t == nil {
		t = l.getTensor(len(b.indices), m.C, m.H, m.W)
		b.views[v] = t
	}
	if t.Shape[1] != m.C || t.Shape[2] != m.H || t.Shape[3] != m.W {
		return nil, fmt.Errorf("image %dx%dx%d in a batch of %v (add a resize or crop to the pipeline)", m.C, m.H, m.W, t.Shape[1:])
	}
	return t, nil
}

// Next returns the next batch, or io.EOF after the last one. Once it has
// returned an error, the epoch is over: call Close.
func (it *Iterator) Next() (*Batch, error) {
	if it.closed.Load() {
		return nil, errors.New("loader: Next after Close")
	}
	if it.err != nil {
		return nil, it.err
	}
	start := time.Now()
	var b *batchState
	select {
	case bs, ok := <-it.ready:
		if !ok {
			if err := it.ctx.Err(); err != nil {
				return nil, err
			}
			return nil, io.EOF
		}
		b = bs
	case <-it.ctx.Done():
		return nil, it.ctx.Err()
	}
	select {
	case <-b.done:
	case <-it.ctx.Done():
		return nil, it.ctx.Err()
	}
	it.waited += time.Since(start)
	it.batches++
	if b.err != nil {
		it.cancel()
		return nil, fmt.Errorf("loader epoch %d: %w", it.epoch, b.err)
	}
	out := &Batch{Views: b.views, Labels: b.labels, Indices: b.indices, loader: it.l}
	if kept := compact(b); kept < len(b.indices) {
		if kept == 0 {
			// Every sample was skipped: give the trainer the next batch.
			for _, t := range b.views {
				if t != nil {
					it.l.mu.Lock()
					key := [4]int{t.Shape[0], t.Shape[1], t.Shape[2], t.Shape[3]}
					it.l.free[key] = append(it.l.free[key], t)
					it.l.mu.Unlock()
				}
			}
			return it.Next()
		}
		out.Labels, out.Indices = b.labels[:kept], b.indices[:kept]
		for v, t := range b.views {
			// A short batch gets its own smaller tensor view of the buffer;
			// it is not recycled (Release skips slices with spare capacity).
			per := len(t.Data) / t.Shape[0]
			out.Views[v] = &tensor.Tensor{Shape: []int{kept, t.Shape[1], t.Shape[2], t.Shape[3]}, Data: t.Data[:kept*per]}
		}
	}
	return out, nil
}

// compact moves the kept samples of b to the front and returns their count.
func compact(b *batchState) int {
	kept := 0
	for r, ok := range b.ok {
		if !ok {
			continue
		}
		if r != kept {
			for _, t := range b.views {
				per := len(t.Data) / t.Shape[0]
				copy(t.Data[kept*per:(kept+1)*per], t.Data[r*per:(r+1)*per])
			}
			b.labels[kept], b.indices[kept] = b.labels[r], b.indices[r]
		}
		kept++
	}
	return kept
}

// WaitTime is the total time Next spent waiting for data, and the number of
// batches returned: the trainer's data stall.
func (it *Iterator) WaitTime() (time.Duration, int) { return it.waited, it.batches }

// Close stops the workers and waits for them to exit.
func (it *Iterator) Close() {
	if it.closed.Swap(true) {
		return
	}
	it.cancel()
	it.wg.Wait()
}
