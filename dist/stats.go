package dist

import (
	"sync/atomic"
	"time"
)

// Stats is what a Comm's collectives have carried so far: the measure of
// a data-parallel step's communication (Train reports it per step). A
// world of one rank carries nothing.
type Stats struct {
	// Calls counts collectives, the length checks of Allgather and Bcast
	// included: each is at least one message's latency.
	Calls int64
	// Floats is what this rank sent: an allreduce's or bcast's buffer, an
	// allgather's send (a ring moves about twice an allreduce's buffer
	// each way; see BusBandwidth).
	Floats int64
	// Wait is the time spent inside collectives, waiting for slower ranks
	// included.
	Wait time.Duration
}

// Sub is the traffic between an earlier snapshot and s.
func (s Stats) Sub(earlier Stats) Stats {
	return Stats{Calls: s.Calls - earlier.Calls, Floats: s.Floats - earlier.Floats, Wait: s.Wait - earlier.Wait}
}

// Stats is a snapshot of c's counters.
func (c *Comm) Stats() Stats {
	return Stats{Calls: c.stats.calls.Load(), Floats: c.stats.floats.Load(), Wait: time.Duration(c.stats.wait.Load())}
}

type counters struct {
	calls, floats, wait atomic.Int64
}

func (k *counters) add(floats int, start time.Time) {
	k.calls.Add(1)
	k.floats.Add(int64(floats))
	k.wait.Add(int64(time.Since(start)))
}
