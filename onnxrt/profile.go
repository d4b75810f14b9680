package onnxrt

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// OpTime is the time the Go engine spent in one op type over the runs
// since profiling began.
type OpTime struct {
	Op    string        // the ONNX op type, or a fused op's name ("Gelu")
	Calls int           // node executions
	Total time.Duration // wall time inside the op's kernels
}

// opProfile sums step times per op type, across concurrent runs.
type opProfile struct {
	mu  sync.Mutex
	ops map[string]*OpTime
}

func (p *opProfile) add(op string, d time.Duration) {
	p.mu.Lock()
	t := p.ops[op]
	if t == nil {
		t = &OpTime{Op: op}
		p.ops[op] = t
	}
	t.Calls++
	t.Total += d
	p.mu.Unlock()
}

// EnableProfile starts timing every step of later runs by op type (what
// ONNX Runtime's enable_profiling gives, summed per op); it resets what
// was timed so far. It costs two clock reads per node.
func (s *GoSession) EnableProfile() {
	s.prof.Store(&opProfile{ops: map[string]*OpTime{}})
}

// Profile is the time per op type since EnableProfile, the most costly
// first; nil when profiling is off.
func (s *GoSession) Profile() []OpTime {
	p := s.prof.Load()
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]OpTime, 0, len(p.ops))
	for _, t := range p.ops {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b OpTime) int {
		return cmp.Or(cmp.Compare(b.Total, a.Total), cmp.Compare(a.Op, b.Op))
	})
	return out
}
