package preprocess

import (
	"context"
	"fmt"
	"iter"
	"log"
	"runtime"
	"sync"
)

// ErrorPolicy says what Files does with a file that cannot be read or
// preprocessed.
type ErrorPolicy int

const (
	// Fail (the default) stops at the first bad file (in input order) and
	// yields its error, which names the file.
	Fail ErrorPolicy = iota
	// Skip reports the file through Options.Warn and leaves it out; each
	// Batch says which inputs it holds.
	Skip
)

// ParseErrorPolicy maps the CLI values "fail" (or "") and "skip".
func ParseErrorPolicy(s string) (ErrorPolicy, error) {
	switch s {
	case "fail", "":
		return Fail, nil
	case "skip":
		return Skip, nil
	}
	return 0, fmt.Errorf("error policy %q: want fail or skip", s)
}

func (p ErrorPolicy) String() string {
	if p == Skip {
		return "skip"
	}
	return "fail"
}

// DefaultBatchSize is Options.BatchSize when it is 0.
const DefaultBatchSize = 64

// Options configure Files.
type Options struct {
	Workers   int // decoding goroutines; 0: GOMAXPROCS
	BatchSize int // images per Batch; 0: DefaultBatchSize
	OnError   ErrorPolicy
	// Warn is told about each file Skip leaves out (index into paths); nil
	// logs it. It is called from the goroutine that ranges over Files.
	Warn   func(index int, path string, err error)
	Decode DecodeOptions
}

// Batch is up to BatchSize preprocessed images, in input order.
type Batch struct {
	// Data holds len(Indices) images of spec.Len() float32 values each (NCHW).
	// It is the caller's to keep.
	Data []float32
	// Indices are the positions in paths of the images in Data, increasing.
	// Under Fail they are consecutive; under Skip the bad files are missing.
	Indices []int
}

// Files reads, decodes and preprocesses paths on Options.Workers goroutines
// and yields them in input order, in batches of Options.BatchSize (the last
// may be shorter; under Skip batches are still full, filled from later
// files). An error ends the sequence: a bad spec, the first bad file under
// Fail, every file failing under Skip, or ctx ending. Stopping the range
// early stops the workers; no goroutine outlives the loop.
func Files(ctx context.Context, paths []string, spec Spec, opts Options) iter.Seq2[Batch, error] {
	return func(yield func(Batch, error) bool) {
		p, err := spec.prepare()
		if err != nil {
			yield(Batch{}, err)
			return
		}
		if len(paths) == 0 {
			return
		}
		bs := opts.BatchSize
		if bs <= 0 {
			bs = DefaultBatchSize
		}
		workers := opts.Workers
		if workers <= 0 {
			workers = runtime.GOMAXPROCS(0)
		}
		workers = min(workers, len(paths))
		warn := opts.Warn
		if warn == nil {
			warn = func(i int, path string, err error) { log.Printf("warning: skipping input %d: %v", i, err) }
		}

		type result struct {
			data []float32
			err  error
		}
		type job struct {
			i   int
			out chan<- result
		}
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		defer wg.Wait() // runs after cancel: the workers see it and leave
		defer cancel()

		size := p.Len()
		var pool sync.Pool // per-image buffers, back from the consumer
		jobs := make(chan job)
		// order carries each input's result slot in input order; its capacity
		// bounds how far the workers run ahead of the consumer: two batches,
		// so that the next one is decoded while the caller runs this one.
		order := make(chan chan result, max(4*workers, 2*bs))
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sc := &scratch{}
				for j := range jobs {
					buf, _ := pool.Get().([]float32)
					if buf == nil {
						buf = make([]float32, size)
					}
					err := p.file(paths[j.i], opts.Decode, buf, sc)
					j.out <- result{buf, err} // buffered: never blocks
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(order)
			defer close(jobs)
			for i := range paths {
				out := make(chan result, 1)
				select {
				case order <- out:
				case <-ctx.Done():
					return
				}
				select {
				case jobs <- job{i, out}:
				case <-ctx.Done():
					return
				}
			}
		}()

		newBatch := func() Batch {
			return Batch{Data: make([]float32, 0, bs*size), Indices: make([]int, 0, bs)}
		}
		b := newBatch()
		i, kept := 0, 0
		for out := range order {
			var r result
			select {
			case r = <-out:
			case <-ctx.Done():
				yield(Batch{}, ctx.Err())
				return
			}
			if r.err != nil {
				pool.Put(r.data)
				if opts.OnError != Skip {
					yield(Batch{}, fmt.Errorf("input %d of %d: %w", i+1, len(paths), r.err))
					return
				}
				warn(i, paths[i], r.err)
			} else {
				b.Data = append(b.Data, r.data...)
				pool.Put(r.data)
				b.Indices = append(b.Indices, i)
				kept++
				if len(b.Indices) == bs {
					if !yield(b, nil) {
						return
					}
					b = newBatch()
				}
			}
			i++
		}
		if i < len(paths) { // the producer stopped: ctx ended
			yield(Batch{}, ctx.Err())
			return
		}
		if len(b.Indices) > 0 {
			if !yield(b, nil) {
				return
			}
		}
		if kept == 0 {
			yield(Batch{}, fmt.Errorf("preprocess: none of the %d inputs could be read (first: %s)", len(paths), paths[0]))
		}
	}
}

// keepFileBuffer is the largest read buffer a worker keeps for the next
// file; a rare huge file should not pin its memory for the whole run.
const keepFileBuffer = 16 << 20

// file is the whole path for one file, into dst.
func (p *prepared) file(path string, opts DecodeOptions, dst []float32, sc *scratch) error {
	b, err := readFileInto(path, opts.maxBytes(), sc.file)
	if err != nil {
		return err
	}
	if cap(b) <= keepFileBuffer {
		sc.file = b
	}
	img, err := Decode(path, b, opts)
	if err != nil {
		return err
	}
	if err := p.into(dst, img, sc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
