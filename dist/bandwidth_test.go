package dist

import (
	"math"
	"sync"
	"testing"
)

func TestTimeAllreduce(t *testing.T) {
	comms, err := NewInProcess(2)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]AllreduceTiming, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[r], errs[r] = TimeAllreduce(c, 1000, 5)
		}()
	}
	wg.Wait()
	for r := range got {
		if errs[r] != nil {
			t.Fatal(errs[r])
		}
		if got[r] != got[0] {
			t.Errorf("rank %d timed %+v, rank 0 %+v: the mean over ranks should be the same everywhere", r, got[r], got[0])
		}
	}
	g := got[0]
	if g.Floats != 1000 || g.Iters != 5 || g.Ranks != 2 || !(g.Seconds > 0) || g.Bytes() != 4000 {
		t.Fatalf("timing %+v", g)
	}
	// Two ranks: each sends and receives the whole buffer once.
	if math.Abs(g.BusBandwidth()-g.AlgorithmBandwidth()) > 1e-9*g.AlgorithmBandwidth() {
		t.Errorf("2 ranks: bus bandwidth %g, algorithm bandwidth %g; want equal", g.BusBandwidth(), g.AlgorithmBandwidth())
	}
	if _, err := TimeAllreduce(comms[0], 0, 5); err == nil {
		t.Error("0 floats: no error")
	}
}

func TestRingAllreduceSeconds(t *testing.T) {
	// 8 ranks, 100 MB over 1 GB/s, 1 ms latency: 2*7/8*0.1 s + 14 ms.
	if got, want := RingAllreduceSeconds(1e8, 8, 1e9, 1e-3), 0.175+0.014; math.Abs(got-want) > 1e-12 {
		t.Errorf("ring allreduce: %g s, want %g", got, want)
	}
	if got := RingAllreduceSeconds(1e8, 1, 1e9, 1e-3); got != 0 {
		t.Errorf("one rank: %g s, want 0", got)
	}
	one := AllreduceTiming{Floats: 250, Iters: 1, Ranks: 1, Seconds: 1}
	if one.BusBandwidth() != 0 {
		t.Errorf("one rank moves nothing; bus bandwidth %g", one.BusBandwidth())
	}
}
