package data

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sslzoo/sslzoo/data/augment"
)

// synthetic is an Images set where pixel j of image i is (i*7 + j) % 256
// and the label is i % 10.
func synthetic(n, c, h, w int) *Images {
	s := &Images{Name: "synthetic", N: n, C: c, H: h, W: w, Pix: make([]uint8, n*c*h*w), Labels: make([]int, n)}
	per := c * h * w
	for i := 0; i < n; i++ {
		for j := 0; j < per; j++ {
			s.Pix[i*per+j] = uint8((i*7 + j) % 256)
		}
		s.Labels[i] = i % 10
	}
	return s
}

func drain(t *testing.T, l *Loader, epoch int) []*Batch {
	t.Helper()
	it := l.Epoch(context.Background(), epoch)
	defer it.Close()
	var out []*Batch
	for {
		b, err := it.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
}

func TestLoaderBatchesAndLabels(t *testing.T) {
	ds := synthetic(23, 1, 4, 5)
	l, err := NewLoader(ds, LoaderConfig{BatchSize: 8, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	bs := drain(t, l, 0)
	if len(bs) != 3 || l.Len() != 3 {
		t.Fatalf("%d batches (Len %d), want 3", len(bs), l.Len())
	}
	for bi, b := range bs {
		n := len(b.Indices)
		if want := []int{8, 8, 7}[bi]; n != want || len(b.Views) != 1 || !slices.Equal(b.Views[0].Shape, []int{n, 1, 4, 5}) {
			t.Fatalf("batch %d: %d samples, views %d, shape %v", bi, n, len(b.Views), b.Views[0].Shape)
		}
		for r, idx := range b.Indices {
			if idx != bi*8+r || b.Labels[r] != idx%10 {
				t.Fatalf("batch %d row %d: index %d label %d", bi, r, idx, b.Labels[r])
			}
			for j := 0; j < 20; j++ {
				if got, want := b.Views[0].Data[r*20+j], float32((idx*7+j)%256)/255; got != want {
					t.Fatalf("batch %d row %d pixel %d = %v, want %v", bi, r, j, got, want)
				}
			}
		}
	}
	l, _ = NewLoader(ds, LoaderConfig{BatchSize: 8, DropLast: true})
	if bs := drain(t, l, 0); len(bs) != 2 || l.Len() != 2 {
		t.Fatalf("DropLast: %d batches", len(bs))
	}
}

func TestLoaderShuffleDeterministic(t *testing.T) {
	ds := synthetic(50, 1, 8, 8)
	views := augment.SimCLR(6, 0.5, true, augment.FashionMNISTNorm)
	run := func(workers, epoch int) ([]int, []float32) {
		l, err := NewLoader(ds, LoaderConfig{BatchSize: 16, Shuffle: true, Seed: 42, Workers: workers, Views: views})
		if err != nil {
			t.Fatal(err)
		}
		var idx []int
		var pix []float32
		for _, b := range drain(t, l, epoch) {
			idx = append(idx, b.Indices...)
			for _, v := range b.Views {
				pix = append(pix, v.Data...)
			}
		}
		return idx, pix
	}
	i1, p1 := run(1, 3)
	i4, p4 := run(4, 3)
	if !slices.Equal(i1, i4) || !slices.Equal(p1, p4) {
		t.Fatal("output depends on the number of workers")
	}
	sorted := slices.Clone(i1)
	slices.Sort(sorted)
	for i, v := range sorted {
		if v != i {
			t.Fatalf("epoch order is not a permutation: %v", i1)
		}
	}
	if slices.IsSorted(i1) {
		t.Fatal("Shuffle left the order sorted")
	}
	i2, p2 := run(2, 4)
	if slices.Equal(i1, i2) || slices.Equal(p1, p2) {
		t.Fatal("epochs 3 and 4 gave the same order or pixels")
	}
	// The two views of one sample are different draws.
	l, _ := NewLoader(ds, LoaderConfig{BatchSize: 4, Seed: 1, Views: views})
	b := drain(t, l, 0)[0]
	if slices.Equal(b.Views[0].Data, b.Views[1].Data) {
		t.Fatal("both views identical")
	}
}

func TestLoaderMultiCropShapes(t *testing.T) {
	ds := synthetic(10, 1, 28, 28)
	views := augment.SwAV(32, 2, 16, 3, nil)
	l, err := NewLoader(ds, LoaderConfig{BatchSize: 4, Views: views, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range drain(t, l, 0) {
		n := len(b.Indices)
		for v, tns := range b.Views {
			size := 32
			if v >= 2 {
				size = 16
			}
			if !slices.Equal(tns.Shape, []int{n, 1, size, size}) {
				t.Fatalf("view %d shape %v", v, tns.Shape)
			}
		}
	}
}

// failing wraps a dataset and fails or skips chosen samples.
type failing struct {
	Dataset
	fail, skip map[int]bool
	slow       time.Duration
	calls      atomic.Int64
}

func (f *failing) Get(i int) (*augment.Image, int, error) {
	f.calls.Add(1)
	if f.slow > 0 {
		time.Sleep(f.slow)
	}
	if f.fail[i] {
		return nil, 0, fmt.Errorf("sample %d is broken", i)
	}
	if f.skip[i] {
		return nil, 0, fmt.Errorf("%w: sample %d", ErrSkipSample, i)
	}
	return f.Dataset.Get(i)
}

func TestLoaderSkipAndFail(t *testing.T) {
	ds := &failing{Dataset: synthetic(12, 1, 2, 2), skip: map[int]bool{1: true, 2: true, 4: true, 5: true, 6: true, 7: true}}
	var warned atomic.Int32
	l, _ := NewLoader(ds, LoaderConfig{BatchSize: 4, Workers: 2, Warn: func(error) { warned.Add(1) }})
	bs := drain(t, l, 0)
	// Batch 0 keeps 0 and 3; batch 1 (4-7) is entirely skipped; batch 2 is whole.
	if len(bs) != 2 || !slices.Equal(bs[0].Indices, []int{0, 3}) || !slices.Equal(bs[1].Indices, []int{8, 9, 10, 11}) {
		t.Fatalf("batches %v / %v", bs[0].Indices, bs[len(bs)-1].Indices)
	}
	if !slices.Equal(bs[0].Views[0].Shape, []int{2, 1, 2, 2}) || bs[0].Views[0].Data[4] != float32(3*7%256)/255 {
		t.Fatalf("compacted batch: shape %v data %v", bs[0].Views[0].Shape, bs[0].Views[0].Data)
	}
	if warned.Load() != 6 {
		t.Fatalf("%d warnings for 6 skipped samples", warned.Load())
	}

	ds = &failing{Dataset: synthetic(40, 1, 2, 2), fail: map[int]bool{9: true}}
	l, _ = NewLoader(ds, LoaderConfig{BatchSize: 4, Workers: 2})
	it := l.Epoch(context.Background(), 0)
	defer it.Close()
	var err error
	for n := 0; n < 10 && err == nil; n++ {
		_, err = it.Next()
	}
	if err == nil || err == io.EOF || !strings.Contains(err.Error(), "sample 9 is broken") {
		t.Fatalf("want the sample 9 error, got %v", err)
	}
}

// A transform that panics must surface as an error, not crash the process.
type panicky struct{}

func (panicky) Apply(*augment.Image, *rand.Rand) (*augment.Image, error) { panic("boom") }

func TestLoaderPanicBecomesError(t *testing.T) {
	l, _ := NewLoader(synthetic(4, 1, 2, 2), LoaderConfig{BatchSize: 2, Views: []augment.Transform{panicky{}}})
	it := l.Epoch(context.Background(), 0)
	defer it.Close()
	if _, err := it.Next(); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("got %v", err)
	}
}

func TestLoaderMismatchedSizes(t *testing.T) {
	// No resize in the pipeline and images of two sizes: a clear error.
	ds := &mixed{}
	l, _ := NewLoader(ds, LoaderConfig{BatchSize: 2, Workers: 1})
	it := l.Epoch(context.Background(), 0)
	defer it.Close()
	if _, err := it.Next(); err == nil || !strings.Contains(err.Error(), "add a resize") {
		t.Fatalf("got %v", err)
	}
}

type mixed struct{}

func (mixed) Len() int { return 2 }
func (mixed) Get(i int) (*augment.Image, int, error) {
	return augment.NewImage(1, 2+i, 2), 0, nil
}

func TestLoaderPrefetchBoundAndClose(t *testing.T) {
	before := runtime.NumGoroutine()
	ds := &failing{Dataset: synthetic(1000, 1, 2, 2)}
	l, _ := NewLoader(ds, LoaderConfig{BatchSize: 10, Workers: 3, Prefetch: 2})
	it := l.Epoch(context.Background(), 0)
	b, err := it.Next()
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
	// The trainer now stalls: the loader may fill the current batch's
	// successors up to Prefetch (+ the one being dispatched), no further.
	time.Sleep(100 * time.Millisecond)
	if n := ds.calls.Load(); n > 10*(1+2+1)+3 {
		t.Fatalf("loader read %d samples ahead of a stalled trainer (Prefetch 2, batch 10)", n)
	}
	it.Close()
	it.Close() // idempotent
	if _, err := it.Next(); err == nil {
		t.Fatal("Next after Close: no error")
	}
	// Cancelling the context also ends an epoch.
	ctx, cancel := context.WithCancel(context.Background())
	it = l.Epoch(ctx, 1)
	cancel()
	for {
		if _, err := it.Next(); err != nil {
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("after cancel: %v", err)
			}
			break
		}
	}
	it.Close()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines left running (%d before)", n, before)
	}
}

func TestLoaderReleaseReuses(t *testing.T) {
	l, _ := NewLoader(synthetic(40, 1, 3, 3), LoaderConfig{BatchSize: 10, Workers: 2, Prefetch: 1})
	it := l.Epoch(context.Background(), 0)
	defer it.Close()
	seen := map[*float32]bool{}
	reused := false
	for {
		b, err := it.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := &b.Views[0].Data[0]
		reused = reused || seen[p]
		seen[p] = true
		b.Release()
	}
	if !reused {
		t.Fatal("released buffers never came back")
	}
}

func TestLoaderBadConfig(t *testing.T) {
	if _, err := NewLoader(synthetic(3, 1, 2, 2), LoaderConfig{}); err == nil {
		t.Error("batch size 0: no error")
	}
	if _, err := NewLoader(&Images{Name: "empty"}, LoaderConfig{BatchSize: 2}); err == nil {
		t.Error("empty dataset: no error")
	}
	if _, err := NewLoader(synthetic(3, 1, 2, 2), LoaderConfig{BatchSize: 4, DropLast: true}); err == nil {
		t.Error("no full batch with DropLast: no error")
	}
}

// K sharded loaders together yield exactly the batches of one loader:
// each global batch's rows in order, split into K consecutive runs, with
// the same augmentation draws.
func TestLoaderShards(t *testing.T) {
	ds := synthetic(45, 1, 8, 8)
	views := augment.SimCLR(6, 0.5, true, augment.FashionMNISTNorm)
	cfg := LoaderConfig{BatchSize: 10, Shuffle: true, Seed: 9, Workers: 2, Views: views, DropLast: true}
	one, err := NewLoader(ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	whole := drain(t, one, 2)
	for _, k := range []int{2, 3} {
		rows := make([][]*Batch, k)
		for r := range k {
			c := cfg
			c.Shard, c.Shards = r, k
			l, err := NewLoader(ds, c)
			if err != nil {
				t.Fatal(err)
			}
			if l.Len() != one.Len() {
				t.Fatalf("%d shards: %d batches per epoch, one loader %d", k, l.Len(), one.Len())
			}
			rows[r] = drain(t, l, 2)
		}
		for bi, w := range whole {
			var idx []int
			var pix [2][]float32
			for r := range k {
				b := rows[r][bi]
				idx = append(idx, b.Indices...)
				for v := range 2 {
					pix[v] = append(pix[v], b.Views[v].Data...)
				}
			}
			if !slices.Equal(idx, w.Indices) || !slices.Equal(pix[0], w.Views[0].Data) || !slices.Equal(pix[1], w.Views[1].Data) {
				t.Fatalf("%d shards, batch %d: rows %v, one loader %v (or their pixels differ)", k, bi, idx, w.Indices)
			}
		}
	}
	for _, c := range []LoaderConfig{{BatchSize: 4, Shard: 2, Shards: 2}, {BatchSize: 4, Shard: 1}, {BatchSize: 4, Shards: 5}} {
		if _, err := NewLoader(ds, c); err == nil {
			t.Errorf("shard %d of %d at batch %d: no error", c.Shard, c.Shards, c.BatchSize)
		}
	}
}
