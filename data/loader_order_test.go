package data

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/data/augment"
)

// drawTag replaces every pixel by the first draw of the sample's
// generator, so a batch row shows which augmentation stream made it.
type drawTag struct{}

func (drawTag) Apply(m *augment.Image, rng *rand.Rand) (*augment.Image, error) {
	v := rng.Float32()
	out := &augment.Image{C: m.C, H: m.H, W: m.W, Pix: make([]float32, len(m.Pix))}
	for i := range out.Pix {
		out.Pix[i] = v
	}
	return out, nil
}

// TestLoaderOrder: LoaderConfig.Order replaces the shuffle, batch by
// batch and across shards; the first occurrence of an index draws as
// SampleRNG, a repeat draws anew; a bad list is an error from Next.
func TestLoaderOrder(t *testing.T) {
	ds := synthetic(10, 1, 2, 2)
	order := []int{3, 3, 7, 0, 3, 9, 1, 1, 2, 5}
	cfg := LoaderConfig{BatchSize: 4, Seed: 11, Shuffle: true, Workers: 3, Views: []augment.Transform{drawTag{}},
		Order: func(epoch int) []int { return append([]int(nil), order...) }}
	l, err := NewLoader(ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	bs := drain(t, l, 2)
	if len(bs) != 3 || l.Len() != 3 {
		t.Fatalf("%d batches (Len %d), want 3", len(bs), l.Len())
	}
	var got []int
	draws := map[int][]float32{}
	for _, b := range bs {
		got = append(got, b.Indices...)
		for r, idx := range b.Indices {
			if b.Labels[r] != idx%10 {
				t.Errorf("row of image %d has label %d", idx, b.Labels[r])
			}
			draws[idx] = append(draws[idx], b.Views[0].Data[r*4])
		}
	}
	if !slices.Equal(got, order) {
		t.Fatalf("indices %v, want the order %v", got, order)
	}
	for idx, ds := range draws {
		if want := l.SampleRNG(2, idx).Float32(); ds[0] != want {
			t.Errorf("image %d first draw %g, want SampleRNG's %g", idx, ds[0], want)
		}
		for i := 1; i < len(ds); i++ {
			if ds[i] == ds[0] {
				t.Errorf("image %d repeat %d drew as its first occurrence (%g)", idx, i, ds[i])
			}
		}
	}
	if len(draws[3]) != 3 || len(draws[1]) != 2 {
		t.Fatalf("draws %v", draws)
	}
	// Two shards together yield the one loader's batches.
	for shard := range 2 {
		c := cfg
		c.Shard, c.Shards = shard, 2
		sl, err := NewLoader(ds, c)
		if err != nil {
			t.Fatal(err)
		}
		for bi, b := range drain(t, sl, 2) {
			full := bs[bi]
			n := len(full.Indices)
			lo := shard * n / 2
			for r, idx := range b.Indices {
				if idx != full.Indices[lo+r] || b.Views[0].Data[r*4] != full.Views[0].Data[(lo+r)*4] {
					t.Fatalf("shard %d batch %d row %d: image %d (%g), want %d (%g)", shard, bi, r, idx, b.Views[0].Data[r*4],
						full.Indices[lo+r], full.Views[0].Data[(lo+r)*4])
				}
			}
		}
	}
	for _, bad := range [][]int{nil, {1, 2, 3}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 10}, {0, 1, 2, 3, 4, 5, 6, 7, 8, -1}} {
		c := cfg
		c.Order = func(int) []int { return bad }
		bl, err := NewLoader(ds, c)
		if err != nil {
			t.Fatal(err)
		}
		it := bl.Epoch(context.Background(), 0)
		if _, err := it.Next(); err == nil || !strings.Contains(err.Error(), "order") {
			t.Errorf("order %v: error %v", bad, err)
		}
		it.Close()
	}
}
