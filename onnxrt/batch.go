package onnxrt

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"

	"github.com/sslzoo/sslzoo/tensor"
)

// Batcher runs inputs with many rows through an engine in batches of at
// most Size rows, on a fixed pool of Workers goroutines sharing the one
// engine (both engines are safe for concurrent use). Every input and output
// must carry the batch on axis 0.
type Batcher struct {
	Engine  Engine
	Size    int // rows per Run; 0 means all rows at once
	Workers int // concurrent Runs; 0 means 1
}

// Run splits the inputs along axis 0, runs the pieces, and joins each
// output back in order.
func (b *Batcher) Run(inputs ...*Tensor) ([]*Tensor, error) {
	if len(inputs) == 0 {
		return nil, errors.New("batcher: no inputs")
	}
	rows := -1
	for i, t := range inputs {
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("batcher: input %d: %w", i, err)
		}
		if len(t.Shape) == 0 {
			return nil, fmt.Errorf("batcher: input %d is a scalar; inputs need a batch axis", i)
		}
		if rows >= 0 && t.Shape[0] != rows {
			return nil, fmt.Errorf("batcher: input %d has %d rows, input 0 has %d", i, t.Shape[0], rows)
		}
		rows = t.Shape[0]
	}
	size := b.Size
	if size <= 0 || size > rows {
		size = rows
	}
	if rows == 0 {
		return nil, errors.New("batcher: inputs have no rows")
	}
	nChunks := (rows + size - 1) / size
	results := make([][]*Tensor, nChunks)
	errs := make([]error, nChunks)
	jobs := make(chan int)
	var wg sync.WaitGroup
	var failed sync.Once
	stop := make(chan struct{})
	for range max(1, min(b.Workers, nChunks)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every Run of a worker on one OS thread, so that the Go
			// engine's OpenMP team stays the same between batches (see
			// tensor.PinThread): Run alone pins only within itself.
			defer tensor.PinThread()()
			for c := range jobs {
				lo, hi := c*size, min((c+1)*size, rows)
				part := make([]*Tensor, len(inputs))
				for i, t := range inputs {
					part[i] = SliceRows(t, lo, hi)
				}
				out, err := b.Engine.Run(part...)
				if err == nil {
					err = CheckRows(out, hi-lo)
				}
				if err != nil {
					errs[c] = fmt.Errorf("rows %d-%d: %w", lo, hi, err)
					failed.Do(func() { close(stop) })
					continue
				}
				results[c] = out
			}
		}()
	}
feed:
	for c := range nChunks {
		select {
		case jobs <- c:
		case <-stop:
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("batcher: %w", err)
	}
	if nChunks == 1 {
		return results[0], nil
	}
	out := make([]*Tensor, len(results[0]))
	for o := range out {
		parts := make([]*Tensor, nChunks)
		for c := range parts {
			parts[c] = results[c][o]
		}
		out[o] = ConcatRows(parts)
	}
	return out, nil
}

// CheckRows makes sure every output carries rows batch rows on axis 0.
func CheckRows(out []*Tensor, rows int) error {
	for i, t := range out {
		if len(t.Shape) == 0 || t.Shape[0] != rows {
			return fmt.Errorf("output %d has shape %v, which does not carry the %d batch rows on axis 0", i, t.Shape, rows)
		}
	}
	return nil
}

// SliceRows views rows [lo, hi) of t (no copy).
func SliceRows(t *Tensor, lo, hi int) *Tensor {
	per := numel(t.Shape[1:])
	shape := slices.Clone(t.Shape)
	shape[0] = hi - lo
	data := reflect.ValueOf(t.Data).Slice(lo*per, hi*per).Interface()
	return &Tensor{DType: t.DType, Shape: shape, Data: data}
}

// ConcatRows joins tensors of one type and row shape along axis 0 into a
// new tensor.
func ConcatRows(parts []*Tensor) *Tensor {
	shape := slices.Clone(parts[0].Shape)
	shape[0] = 0
	n := 0
	for _, p := range parts {
		shape[0] += p.Shape[0]
		n += reflect.ValueOf(p.Data).Len()
	}
	all := reflect.MakeSlice(reflect.TypeOf(parts[0].Data), n, n)
	at := 0
	for _, p := range parts {
		at += reflect.Copy(all.Slice(at, n), reflect.ValueOf(p.Data))
	}
	return &Tensor{DType: parts[0].DType, Shape: shape, Data: all.Interface()}
}
