package tensor

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCrewRunsEveryPartOnce: each part runs exactly once, including when
// jobs come after the helpers have gone to sleep, and from several
// goroutines at once (where all but one find the crew busy and say so).
func TestCrewRunsEveryPartOnce(t *testing.T) {
	if crewSize() < 2 {
		t.Skip("one core: no crew")
	}
	for _, pause := range []time.Duration{0, 2 * crewSpin} {
		for parts := 2; parts <= 9; parts++ {
			counts := make([]atomic.Int32, parts)
			time.Sleep(pause) // helpers asleep when pause > crewSpin
			if !runOnCrew(parts, func(i int) { counts[i].Add(1) }) {
				t.Fatalf("parts %d: crew refused an idle job", parts)
			}
			for i := range counts {
				if n := counts[i].Load(); n != 1 {
					t.Fatalf("pause %v, parts %d: part %d ran %d times", pause, parts, i, n)
				}
			}
		}
	}
	var wg sync.WaitGroup
	var total, refused atomic.Int64
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if !runOnCrew(4, func(int) { total.Add(1) }) {
					refused.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if got, want := total.Load(), 4*(800-refused.Load()); got != want {
		t.Fatalf("concurrent jobs ran %d parts, want %d", got, want)
	}
}

// TestCrewNestedAndPanics: a job started from inside a job is refused
// (the caller runs it its own way), and a panic in a part reaches the
// caller after every part has stopped, leaving the crew usable.
func TestCrewNestedAndPanics(t *testing.T) {
	if crewSize() < 2 {
		t.Skip("one core: no crew")
	}
	var nested atomic.Int32
	runOnCrew(2, func(int) {
		if runOnCrew(2, func(int) {}) {
			nested.Add(1)
		}
	})
	if nested.Load() != 0 {
		t.Fatal("a nested job ran on the busy crew")
	}
	var ran atomic.Int32
	func() {
		defer func() {
			if r := recover(); r != "part 3" {
				t.Fatalf("recovered %v, want the part's panic", r)
			}
		}()
		runOnCrew(6, func(i int) {
			ran.Add(1)
			if i == 3 {
				panic("part 3")
			}
		})
		t.Fatal("the panic was swallowed")
	}()
	if ran.Load() != 6 {
		t.Fatalf("%d parts ran around the panic, want 6", ran.Load())
	}
	if !runOnCrew(2, func(int) {}) {
		t.Fatal("crew still busy after a panicking job")
	}
}

// TestParallelOnCrewCovers: Parallel's chunks on the crew cover [0, n)
// exactly once for sizes around the chunking's edges.
func TestParallelOnCrewCovers(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7, 64, 1000, 100003} {
		seen := make([]atomic.Int32, n)
		Parallel(n, parallelGrain, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				seen[i].Add(1)
			}
		})
		for i := range seen {
			if seen[i].Load() != 1 {
				t.Fatalf("n=%d: index %d covered %d times", n, i, seen[i].Load())
			}
		}
	}
}
