// Package batch is the server's dynamic batcher. Requests of one or more
// rows wait in a bounded queue and are cut, oldest first, into batches of
// at most MaxRows rows; a batch that is not full waits at most MaxDelay past
// its oldest request for company, as Triton's dynamic batcher does. A
// request's rows always stay together in one batch, every result goes back
// to its own request, and a request whose context ends leaves the queue (or,
// once its batch runs, has its result dropped) without holding up the
// others.
package batch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

var (
	// ErrFull is returned by Submit when QueueSize requests already wait.
	ErrFull = errors.New("batch: queue full")
	// ErrClosed is returned by Submit after Close.
	ErrClosed = errors.New("batch: closed")
)

// Defaults for zero Config fields.
const (
	DefaultQueueSize = 256
	DefaultWorkers   = 1
)

// Config sets how batches are formed. The zero value runs every request on
// its own (MaxRows 1), with a queue of DefaultQueueSize and one worker.
type Config struct {
	// MaxRows caps the rows of one batch; 0 or 1 turns batching off. A
	// single request larger than MaxRows still runs, alone and whole.
	MaxRows int
	// MaxDelay is how long the oldest queued request may wait for others
	// to fill its batch before the batch runs anyway.
	MaxDelay time.Duration
	// QueueSize is the most requests that may wait; past it Submit fails
	// with ErrFull rather than letting the queue grow.
	QueueSize int
	// Workers is how many batches may run at once (one per engine
	// instance); batches are formed one at a time, in order.
	Workers int
	// Queued, when set, is told each request's time in the queue as its
	// batch is cut.
	Queued func(wait time.Duration)
	// Ran, when set, is told about each batch after it ran.
	Ran func(Stats)
}

// Stats describe one batch run.
type Stats struct {
	Requests int           // requests in the batch (cancelled ones left out)
	Rows     int           // their rows together
	Run      time.Duration // time in the run function
	Err      error         // what the run function returned
}

// Func runs one batch: items in queue order, one result per item, in the
// same order. An error fails every request of the batch.
type Func[T, R any] func(items []T) ([]R, error)

type result[R any] struct {
	v   R
	err error
}

type item[T, R any] struct {
	ctx   context.Context
	in    T
	rows  int
	enq   time.Time
	taken bool // cut into a batch (guarded by Batcher.mu)
	done  chan result[R]
}

// Batcher queues requests and runs them in batches through one Func. It
// is safe for concurrent use.
type Batcher[T, R any] struct {
	cfg Config
	run Func[T, R]

	mu     sync.Mutex
	q      []*item[T, R]
	closed bool

	form   sync.Mutex    // one worker forms a batch at a time, so batches leave in order
	notify chan struct{} // a request arrived (capacity 1; only the forming worker waits on it)
	stop   chan struct{} // closed by Close
	wg     sync.WaitGroup
}

// New starts a batcher's workers. Close stops them.
func New[T, R any](cfg Config, run Func[T, R]) (*Batcher[T, R], error) {
	switch {
	case run == nil:
		return nil, errors.New("batch: no run function")
	case cfg.MaxRows < 0:
		return nil, fmt.Errorf("batch: max rows %d: want >= 1 (1 turns batching off)", cfg.MaxRows)
	case cfg.MaxDelay < 0:
		return nil, fmt.Errorf("batch: max delay %v: want >= 0", cfg.MaxDelay)
	case cfg.QueueSize < 0:
		return nil, fmt.Errorf("batch: queue size %d: want >= 1", cfg.QueueSize)
	case cfg.Workers < 0:
		return nil, fmt.Errorf("batch: workers %d: want >= 1", cfg.Workers)
	}
	if cfg.MaxRows == 0 {
		cfg.MaxRows = 1
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers
	}
	b := &Batcher[T, R]{cfg: cfg, run: run, notify: make(chan struct{}, 1), stop: make(chan struct{})}
	for range cfg.Workers {
		b.wg.Add(1)
		go b.worker()
	}
	return b, nil
}

// Config is the batcher's configuration with defaults filled in.
func (b *Batcher[T, R]) Config() Config { return b.cfg }

// Submit queues in, a request of rows rows, and waits for its result. It
// returns ErrFull when the queue is full, ErrClosed after Close, and
// ctx.Err() when ctx ends first: a request still queued then leaves the
// queue, and one already in a running batch has its result dropped.
func (b *Batcher[T, R]) Submit(ctx context.Context, rows int, in T) (R, error) {
	var zero R
	if rows < 1 {
		return zero, fmt.Errorf("batch: a request of %d rows: want >= 1", rows)
	}
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	it := &item[T, R]{ctx: ctx, in: in, rows: rows, enq: time.Now(), done: make(chan result[R], 1)}
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return zero, ErrClosed
	case len(b.q) >= b.cfg.QueueSize:
		b.mu.Unlock()
		return zero, ErrFull
	}
	b.q = append(b.q, it)
	b.mu.Unlock()
	select {
	case b.notify <- struct{}{}:
	default:
	}
	select {
	case r := <-it.done:
		return r.v, r.err
	case <-ctx.Done():
		b.mu.Lock()
		if !it.taken {
			if i := slices.Index(b.q, it); i >= 0 {
				b.q = slices.Delete(b.q, i, i+1)
			}
		}
		b.mu.Unlock()
		return zero, ctx.Err()
	}
}

// Len is the number of requests waiting in the queue.
func (b *Batcher[T, R]) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.q)
}

// Close stops taking requests, runs every request still queued without
// waiting for MaxDelay, and returns when the last batch has finished.
func (b *Batcher[T, R]) Close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.stop)
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *Batcher[T, R]) worker() {
	defer b.wg.Done()
	for {
		items, ok := b.cut()
		if !ok {
			return
		}
		b.runBatch(items)
	}
}

// cut waits until the head of the queue makes a batch (full, the next
// request does not fit, its delay is up, or the batcher is closing) and
// takes it. It reports false when the batcher is closed and empty.
func (b *Batcher[T, R]) cut() ([]*item[T, R], bool) {
	b.form.Lock()
	defer b.form.Unlock()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		b.mu.Lock()
		if len(b.q) == 0 {
			closed := b.closed
			b.mu.Unlock()
			if closed {
				return nil, false
			}
			select {
			case <-b.notify:
			case <-b.stop:
			}
			continue
		}
		n, rows := 0, 0
		for _, it := range b.q {
			if n > 0 && rows+it.rows > b.cfg.MaxRows {
				break
			}
			n++
			rows += it.rows
		}
		wait := time.Until(b.q[0].enq.Add(b.cfg.MaxDelay))
		if rows >= b.cfg.MaxRows || n < len(b.q) || wait <= 0 || b.closed {
			items := slices.Clone(b.q[:n])
			b.q = slices.Delete(b.q, 0, n)
			now := time.Now()
			for _, it := range items {
				it.taken = true
				if b.cfg.Queued != nil {
					b.cfg.Queued(now.Sub(it.enq))
				}
			}
			b.mu.Unlock()
			return items, true
		}
		b.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-b.notify: // Reset above is safe: since Go 1.23 a timer holds no stale tick
		case <-timer.C:
		case <-b.stop:
		}
	}
}

// runBatch runs the requests of a batch whose clients are still waiting
// and hands each its result.
func (b *Batcher[T, R]) runBatch(items []*item[T, R]) {
	live := items[:0]
	for _, it := range items {
		if it.ctx.Err() == nil {
			live = append(live, it)
		}
	}
	if len(live) == 0 {
		return
	}
	ins := make([]T, len(live))
	rows := 0
	for i, it := range live {
		ins[i] = it.in
		rows += it.rows
	}
	start := time.Now()
	out, err := b.safeRun(ins)
	if err == nil && len(out) != len(live) {
		err = fmt.Errorf("batch: the run function returned %d results for %d requests", len(out), len(live))
	}
	if b.cfg.Ran != nil {
		b.cfg.Ran(Stats{Requests: len(live), Rows: rows, Run: time.Since(start), Err: err})
	}
	for i, it := range live {
		if err != nil {
			it.done <- result[R]{err: err}
		} else {
			it.done <- result[R]{v: out[i]}
		}
	}
}

// safeRun keeps a panicking run function from taking the server down: the
// batch fails with the panic's message instead.
func (b *Batcher[T, R]) safeRun(ins []T) (out []R, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("batch: run failed: %v", p)
		}
	}()
	return b.run(ins)
}
