package tensor

import (
	"runtime"
	"sync"
)

// parallelGrain is the least work (in elements) worth a goroutine; below it
// the scheduling cost outweighs the gain on two cores.
const parallelGrain = 1 << 15

// Parallel splits [0, n) into contiguous chunks, one per available CPU,
// and runs fn on each. cost is the work per index (in element operations),
// not in all: n*cost below parallelGrain runs on the calling goroutine.
func Parallel(n, cost int, fn func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if workers > n {
		workers = n
	}
	if workers <= 1 || n*cost < parallelGrain {
		fn(0, n)
		return
	}
	// On the crew, chunks are claimed as threads come free. There are
	// several per thread, up to one per parallelGrain of work, so that a
	// helper that wakes late (after an OpenMP kernel hushed it) still
	// takes its share instead of leaving most chunks to the caller.
	parts := min(n, max(2*workers, min(n*cost/parallelGrain, 32*workers)))
	if crewSize() == workers && runOnCrew(parts, func(p int) {
		fn(p*n/parts, (p+1)*n/parts)
	}) {
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	// The first chunk runs on the calling goroutine: one goroutine fewer
	// to start, and the caller parks less often. A goroutine that parks
	// resumes on whichever OS thread is free, whose OpenMP pool (oneDNN's)
	// may be asleep for the next kernel. The Go engine's ViT-tiny at batch
	// 1 ran about 10% faster. (Spinning instead of parking was slower.)
	for lo := chunk; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			fn(lo, hi)
		}(lo, hi)
	}
	fn(0, min(chunk, n))
	wg.Wait()
}
