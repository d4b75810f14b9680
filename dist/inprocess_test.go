package dist

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// Three goroutine ranks run the same sequence of collectives many times
// over; each result must be what the collective means, on every rank.
func TestInProcessWorld(t *testing.T) {
	const k = 3
	comms, err := NewInProcess(k)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, k)
	for r, c := range comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail := func(format string, a ...any) {
				if errs[r] == nil {
					errs[r] = fmt.Errorf("rank %d: %s", r, fmt.Sprintf(format, a...))
				}
			}
			for round := range 200 {
				buf := []float32{float32(r), float32(round)}
				if err := c.AllreduceSum(buf); err != nil || !reflect.DeepEqual(buf, []float32{0 + 1 + 2, float32(k * round)}) {
					fail("round %d AllreduceSum: %v %v", round, buf, err)
				}
				all, err := c.Allgather([]float32{float32(10*r + round%7)})
				want := []float32{float32(round % 7), float32(10 + round%7), float32(20 + round%7)}
				if err != nil || !reflect.DeepEqual(all, want) {
					fail("round %d Allgather: %v %v", round, all, err)
				}
				b := []float32{float32(r)}
				if err := c.Bcast(b, round%k); err != nil || b[0] != float32(round%k) {
					fail("round %d Bcast: %v %v", round, b, err)
				}
				if err := c.Barrier(); err != nil {
					fail("barrier: %v", err)
				}
			}
			// Ranks that pass different lengths get an error on every rank.
			if _, err := c.Allgather(make([]float32, r+1)); err == nil || !strings.Contains(err.Error(), "different lengths") {
				fail("uneven Allgather: %v", err)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if comms[1].Rank() != 1 || comms[1].Size() != k {
		t.Errorf("rank %d of %d", comms[1].Rank(), comms[1].Size())
	}
	if _, err := NewInProcess(0); err == nil {
		t.Error("a world of 0 ranks was made")
	}
}
