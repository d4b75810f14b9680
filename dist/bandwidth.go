package dist

import (
	"fmt"
	"time"
)

// AllreduceTiming is how long one AllreduceSum of Floats float32s took,
// averaged over Iters calls after a warm-up and over the ranks.
type AllreduceTiming struct {
	Floats, Iters, Ranks int
	Seconds              float64
}

// Bytes is the size of the buffer each rank reduces.
func (t AllreduceTiming) Bytes() int { return 4 * t.Floats }

// AlgorithmBandwidth is bytes reduced per second, as one rank sees it.
func (t AllreduceTiming) AlgorithmBandwidth() float64 { return float64(t.Bytes()) / t.Seconds }

// BusBandwidth is the algorithm bandwidth times 2(K-1)/K: the bytes each
// rank sends and receives in a ring allreduce, per second. It is the
// figure to compare with a link's speed (as NCCL's tests report it), and
// the one that predicts the time of another size or rank count.
func (t AllreduceTiming) BusBandwidth() float64 {
	if t.Ranks < 2 {
		return 0
	}
	return t.AlgorithmBandwidth() * 2 * float64(t.Ranks-1) / float64(t.Ranks)
}

// TimeAllreduce times iters allreduces of a buffer of floats, after two
// untimed ones. Every rank must call it with the same arguments.
func TimeAllreduce(c *Comm, floats, iters int) (AllreduceTiming, error) {
	if floats < 1 || iters < 1 {
		return AllreduceTiming{}, fmt.Errorf("dist: timing %d allreduces of %d floats: both must be positive", iters, floats)
	}
	buf := make([]float32, floats)
	for range 2 {
		if err := c.AllreduceSum(buf); err != nil {
			return AllreduceTiming{}, err
		}
	}
	if err := c.Barrier(); err != nil {
		return AllreduceTiming{}, err
	}
	start := time.Now()
	for range iters {
		if err := c.AllreduceSum(buf); err != nil {
			return AllreduceTiming{}, err
		}
	}
	mean := []float32{float32(time.Since(start).Seconds() / float64(iters))}
	if err := c.AllreduceMean(mean); err != nil {
		return AllreduceTiming{}, err
	}
	return AllreduceTiming{Floats: floats, Iters: iters, Ranks: c.Size(), Seconds: float64(mean[0])}, nil
}

// RingAllreduceSeconds estimates one ring allreduce of bytes over ranks
// machines whose links carry busBandwidth bytes per second each way, with
// latency seconds per message: 2(K-1) messages of bytes/K each.
func RingAllreduceSeconds(bytes float64, ranks int, busBandwidth, latency float64) float64 {
	if ranks < 2 {
		return 0
	}
	k := float64(ranks)
	return 2*(k-1)/k*bytes/busBandwidth + 2*(k-1)*latency
}
