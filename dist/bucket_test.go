package dist

import (
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
)

func lens(sizes ...int) [][]float32 {
	ts := make([][]float32, len(sizes))
	for i, n := range sizes {
		ts[i] = make([]float32, n)
	}
	return ts
}

func TestEachBucket(t *testing.T) {
	type run struct{ lo, hi, elems int }
	for _, tc := range []struct {
		name  string
		sizes []int
		cap   int
		want  []run
	}{
		{"none", nil, 4, nil},
		{"fits one", []int{1, 2, 3}, 6, []run{{0, 3, 6}}},
		{"splits when full", []int{3, 3, 3}, 6, []run{{0, 2, 6}, {2, 3, 3}}},
		{"large alone", []int{3, 10, 2}, 6, []run{{0, 1, 3}, {1, 2, 10}, {2, 3, 2}}},
		{"large first", []int{10, 1, 1}, 6, []run{{0, 1, 10}, {1, 3, 2}}},
		{"exactly cap", []int{6}, 6, []run{{0, 1, 6}}},
		{"cap one", []int{1, 1, 1}, 1, []run{{0, 1, 1}, {1, 2, 1}, {2, 3, 1}}},
		{"empty tensors ride along", []int{0, 2, 0, 0}, 2, []run{{0, 4, 2}}},
		{"only empty", []int{0, 0}, 1, []run{{0, 2, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []run
			err := eachBucket(lens(tc.sizes...), tc.cap, func(lo, hi, elems int) error {
				got = append(got, run{lo, hi, elems})
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("sizes %v cap %d: runs %v, want %v", tc.sizes, tc.cap, got, tc.want)
			}
		})
	}
}

// Over random sizes, the runs cover every tensor once, in order, and no run
// of two or more tensors exceeds the cap.
func TestEachBucketCovers(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for trial := 0; trial < 500; trial++ {
		sizes := make([]int, rng.Intn(20))
		for i := range sizes {
			sizes[i] = rng.Intn(30)
		}
		capElems := 1 + rng.Intn(40)
		next := 0
		err := eachBucket(lens(sizes...), capElems, func(lo, hi, elems int) error {
			if lo != next || hi <= lo {
				return fmt.Errorf("run [%d,%d) after %d", lo, hi, next)
			}
			sum := 0
			for _, n := range sizes[lo:hi] {
				sum += n
			}
			if sum != elems {
				return fmt.Errorf("run [%d,%d) says %d floats, holds %d", lo, hi, elems, sum)
			}
			if hi-lo > 1 && elems > capElems {
				return fmt.Errorf("run [%d,%d) of %d floats over cap %d", lo, hi, elems, capElems)
			}
			next = hi
			return nil
		})
		if err == nil && next != len(sizes) {
			err = fmt.Errorf("runs end at %d of %d tensors", next, len(sizes))
		}
		if err != nil {
			t.Fatalf("sizes %v cap %d: %v", sizes, capElems, err)
		}
	}
}

// fakeRanks stands in for three ranks: it maps every float v to 3v+3, so an
// element packed twice, never packed or scaled wrongly shows in the result.
type fakeRanks struct {
	calls  [][]float32
	failAt int // 1-based call that fails; 0 never
}

func (f *fakeRanks) reduce(b []float32) error {
	f.calls = append(f.calls, b)
	if len(f.calls) == f.failAt {
		return errors.New("wire cut")
	}
	for i := range b {
		b[i] = 3*b[i] + 3
	}
	return nil
}

func numbered(sizes ...int) [][]float32 {
	ts := lens(sizes...)
	v := float32(1)
	for _, t := range ts {
		for i := range t {
			t[i] = v
			v++
		}
	}
	return ts
}

func TestReducer(t *testing.T) {
	sizes := []int{5, 1, 2, 40, 3, 3}
	for _, tc := range []struct {
		name string
		mean bool
		want func(v float32) float32
	}{
		{"sum", false, func(v float32) float32 { return 3*v + 3 }},
		{"mean", true, func(v float32) float32 { return v + 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeRanks{}
			r := newReducer(f.reduce, 3, 8*4) // buckets of 8 floats
			ts := numbered(sizes...)
			orig := numbered(sizes...)
			var err error
			if tc.mean {
				err = r.AllreduceMean(ts)
			} else {
				err = r.AllreduceSum(ts)
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, c := range f.calls {
				got = append(got, len(c))
			}
			if want := []int{8, 40, 6}; !reflect.DeepEqual(got, want) {
				t.Errorf("call lengths %v, want %v", got, want)
			}
			if &f.calls[1][0] != &ts[3][0] {
				t.Error("the tensor larger than a bucket was copied, not reduced in place")
			}
			for i := range ts {
				for j := range ts[i] {
					if w := tc.want(orig[i][j]); ts[i][j] != w {
						t.Fatalf("tensor %d[%d] = %v, want %v", i, j, ts[i][j], w)
					}
				}
			}
		})
	}
}

func TestReducerOneRankIsIdentity(t *testing.T) {
	f := &fakeRanks{}
	ts := numbered(4, 9)
	if err := newReducer(f.reduce, 1, 16).AllreduceMean(ts); err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 0 || !reflect.DeepEqual(ts, numbered(4, 9)) {
		t.Errorf("one rank: %d calls, tensors %v", len(f.calls), ts)
	}
}

func TestReducerError(t *testing.T) {
	f := &fakeRanks{failAt: 2}
	err := newReducer(f.reduce, 2, 8*4).AllreduceMean(numbered(5, 1, 2, 40, 3))
	if err == nil || !strings.Contains(err.Error(), "gradient bucket of tensors 3-3: wire cut") {
		t.Fatalf("error %v, want the failing bucket named", err)
	}
	if len(f.calls) != 2 {
		t.Errorf("%d calls after a failure, want 2", len(f.calls))
	}
}

// A training loop reuses its Reducer; after the first step it must not
// allocate (fresh pages cost about 12 us each here, see DESIGN.md).
func TestReducerReusesStage(t *testing.T) {
	r := newReducer(func(b []float32) error { return nil }, 2, 1<<10)
	ts := numbered(100, 30, 500, 7)
	if err := r.AllreduceMean(ts); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(20, func() { _ = r.AllreduceMean(ts) }); n != 0 {
		t.Errorf("%v allocations per step after the first", n)
	}
}

func TestNewReducerDefault(t *testing.T) {
	c := newLocal("test")
	if got, want := NewReducer(c, 0).capElems, DefaultBucketBytes/4; got != want {
		t.Errorf("default bucket %d floats, want %d", got, want)
	}
	if got := NewReducer(c, 2).capElems; got != 1 {
		t.Errorf("bucket of 2 bytes holds %d floats, want 1", got)
	}
}
