package dist

import (
	"sync"
	"testing"
)

func TestStats(t *testing.T) {
	comms, err := NewInProcess(2)
	if err != nil {
		t.Fatal(err)
	}
	before := comms[0].Stats()
	var wg sync.WaitGroup
	for _, c := range comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.AllreduceSum(make([]float32, 10)); err != nil {
				t.Error(err)
			}
			if _, err := c.Allgather(make([]float32, 3)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// The allreduce; the allgather's length check (2 floats) and the gather.
	got := comms[0].Stats().Sub(before)
	if got.Calls != 3 || got.Floats != 15 || got.Wait <= 0 {
		t.Errorf("stats %+v, want 3 calls of 15 floats in all and some time", got)
	}
	single := newLocal("one")
	if err := single.AllreduceSum(make([]float32, 4)); err != nil {
		t.Fatal(err)
	}
	if s := single.Stats(); s != (Stats{}) {
		t.Errorf("one rank sends nothing; stats %+v", s)
	}
}
