package tensor

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The crew is one helper goroutine per extra core, each locked to its OS
// thread, that spins for a while after each job before it sleeps. Parallel
// and the split GEMMs hand their parts to it, so that the element-wise
// kernels and the products between them all run on the same two hot
// threads, instead of waking a parked goroutine (Parallel) or an OpenMP
// worker (oneDNN's own threads) for each kernel: on the 2-vCPU VMs a wake
// costs about 100 us, as much as a whole 192x192 projection of ViT-tiny at
// batch 1, which is why its products ran barely faster on two threads
// than on one (fc1 242 against 367 us; QK^T 227 against 127).
//
// The crew runs one job at a time. A caller that finds it busy (a job run
// from inside another, or a second goroutine) gets false from run and does
// the work its old way.
type crew struct {
	busy    sync.Mutex
	active  atomic.Bool   // a job is running
	seq     atomic.Uint64 // bumped for each job posted
	job     atomic.Pointer[crewJob]
	hush    atomic.Int32 // > 0 while an OpenMP kernel runs: helpers sleep at once
	helpers []*crewHelper
}

type crewHelper struct {
	sleeping atomic.Bool
	wake     chan struct{} // one token per claimed sleeper
}

// crewJob is one call's parts. Parts are claimed one by one from next by
// the caller and by whichever helpers are awake, so a helper that wakes
// late costs nothing: the caller simply does more of the parts.
type crewJob struct {
	fn     func(part int)
	parts  int32
	next   atomic.Int32
	done   atomic.Int32
	failed atomic.Pointer[crewPanic]
}

type crewPanic struct{ value any }

// crewSpin is how long an idle helper spins before it sleeps: longer than
// the gaps between kernels in a forward pass, short enough that an idle
// process stops burning a core within a millisecond.
const crewSpin = 300 * time.Microsecond

var (
	crewOnce sync.Once
	theCrew  *crew
)

// getCrew starts the helpers on first use: GOMAXPROCS-1 of them, so the
// caller plus the helpers fill the cores. nil with one core.
func getCrew() *crew {
	crewOnce.Do(func() {
		n := runtime.GOMAXPROCS(0) - 1
		if n < 1 {
			return
		}
		c := &crew{helpers: make([]*crewHelper, n)}
		for i := range c.helpers {
			h := &crewHelper{wake: make(chan struct{}, 1)}
			c.helpers[i] = h
			go h.loop(c)
		}
		theCrew = c
	})
	return theCrew
}

// crewSize is the number of threads a crew job runs on (the caller
// included), or 1 when there is no crew.
func crewSize() int {
	c := getCrew()
	if c == nil {
		return 1
	}
	return len(c.helpers) + 1
}

// crewActive reports whether a crew job is running: every core is taken,
// and a product started now should run on its caller's thread alone.
func crewActive() bool {
	c := theCrew
	return c != nil && c.active.Load()
}

// runOnCrew runs fn(0..parts-1) on the caller and the crew's helpers and
// returns once all have finished. It reports false, having run nothing,
// when there is no crew or it is busy. A panic in a part is raised again
// on the caller once every part has stopped.
func runOnCrew(parts int, fn func(part int)) bool {
	c := getCrew()
	if c == nil || parts < 2 || !c.busy.TryLock() {
		return false
	}
	c.active.Store(true)
	defer func() {
		c.active.Store(false)
		c.busy.Unlock()
	}()
	j := &crewJob{fn: fn, parts: int32(parts)}
	c.job.Store(j)
	c.seq.Add(1)
	for _, h := range c.helpers {
		if h.sleeping.CompareAndSwap(true, false) {
			h.wake <- struct{}{}
		}
	}
	j.work()
	for spins := 0; j.done.Load() < j.parts; spins++ {
		if spins&1023 == 1023 {
			// A helper holding a part was descheduled; let it run.
			runtime.Gosched()
		}
	}
	if p := j.failed.Load(); p != nil {
		panic(p.value)
	}
	return true
}

// work claims and runs parts until none are left.
func (j *crewJob) work() {
	for {
		i := j.next.Add(1) - 1
		if i >= j.parts {
			return
		}
		j.runPart(int(i))
	}
}

func (j *crewJob) runPart(i int) {
	defer func() {
		if r := recover(); r != nil {
			j.failed.CompareAndSwap(nil, &crewPanic{value: r})
		}
		j.done.Add(1)
	}()
	j.fn(i)
}

// loop is a helper's life: run each posted job's free parts, spin for
// crewSpin waiting for the next, then sleep until woken.
func (h *crewHelper) loop(c *crew) {
	// One OS thread for the helper's whole life, so oneDNN and OpenMP see a
	// single thread with its one-thread setting, not whichever M is free.
	runtime.LockOSThread()
	seen := c.seq.Load()
	for {
		if s := c.seq.Load(); s != seen {
			seen = s
			c.job.Load().work()
			continue
		}
		if !h.spin(c, seen) {
			h.sleep(c, seen)
		}
	}
}

// spin waits up to crewSpin for a job after seen; false when none came
// (or an OpenMP kernel wants the cores).
func (h *crewHelper) spin(c *crew, seen uint64) bool {
	start := time.Now()
	for i := 0; ; i++ {
		if c.seq.Load() != seen {
			return true
		}
		if c.hush.Load() > 0 {
			return false
		}
		if i&255 == 255 && time.Since(start) > crewSpin {
			return false
		}
	}
}

// sleep parks the helper until a job after seen is posted. The flag is set
// before the last look at seq, and runOnCrew bumps seq before it reads the
// flag, so one of the two always sees the other.
func (h *crewHelper) sleep(c *crew, seen uint64) {
	h.sleeping.Store(true)
	if c.seq.Load() != seen && h.sleeping.CompareAndSwap(true, false) {
		return
	}
	<-h.wake
}

// crewHushed runs fn, a call into a library that runs its own OpenMP
// threads, with the crew's helpers asleep, so that no spinning helper
// shares a core with an OpenMP worker.
func crewHushed(fn func()) {
	c := theCrew
	if c == nil {
		fn()
		return
	}
	c.hush.Add(1)
	defer c.hush.Add(-1)
	fn()
}
