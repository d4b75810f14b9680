package dist

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
)

// ErrFinalized is returned by every collective called after Finalize.
var ErrFinalized = errors.New("dist: communicator already finalized")

// maxCount is the most elements one MPI call may carry: MPI counts are C ints.
// A variable so that a test can make the chunking visible on small buffers.
var maxCount = math.MaxInt32

// Comm is the world of one training job: every process that mpirun started.
// Its collectives must be called by every rank, in the same order, with
// buffers of the same length (Allgather checks this and Bcast checks it;
// AllreduceSum, on the hot path, does not).
type Comm struct {
	mu    sync.Mutex
	rank  int
	size  int
	name  string
	b     backend
	final bool
}

// backend is the transport under a Comm. Lengths and roots are checked
// before a backend sees them.
type backend interface {
	allreduceSum(buf []float32) error
	// lenRange returns the smallest and largest n over all ranks.
	lenRange(n int) (lo, hi int, err error)
	// allgather fills recv, of length Size*len(send), in rank order.
	allgather(send, recv []float32) error
	bcast(buf []float32, root int) error
	barrier() error
	finalize() error
}

var (
	worldOnce sync.Once
	world     *Comm
	worldErr  error
)

// Init returns the world communicator, starting MPI on the first call. Every
// later call returns the same Comm (or the same error): MPI can be started
// only once in a process, and not again after Finalize.
func Init() (*Comm, error) {
	worldOnce.Do(func() { world, worldErr = initWorld() })
	return world, worldErr
}

// Rank is this process's index in the world, 0 ≤ Rank < Size.
func (c *Comm) Rank() int { return c.rank }

// Size is the number of processes in the world.
func (c *Comm) Size() int { return c.size }

// Backend says what carries the collectives, for start lines and doctor.
func (c *Comm) Backend() string { return c.name }

// AllreduceSum replaces buf, on every rank, by the element-wise sum of every
// rank's buf.
func (c *Comm) AllreduceSum(buf []float32) error {
	return c.wrap(c.allreduce(buf, false))
}

// AllreduceMean replaces buf, on every rank, by the element-wise mean over
// ranks: the sum divided by Size, as data-parallel gradients are averaged.
func (c *Comm) AllreduceMean(buf []float32) error {
	return c.wrap(c.allreduce(buf, true))
}

func (c *Comm) allreduce(buf []float32, mean bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.final {
		return ErrFinalized
	}
	if err := c.b.allreduceSum(buf); err != nil {
		return fmt.Errorf("allreduce of %d floats: %w", len(buf), err)
	}
	if mean && c.size > 1 {
		k := float32(c.size)
		for i := range buf {
			buf[i] /= k
		}
	}
	return nil
}

// Allgather returns every rank's send, concatenated in rank order, so rank
// r's part is at [r*len(send), (r+1)*len(send)). Every rank must send the same
// length; a mismatch is an error on every rank.
func (c *Comm) Allgather(send []float32) ([]float32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.final {
		return nil, ErrFinalized
	}
	if err := c.sameLen("allgather", len(send)); err != nil {
		return nil, c.wrap(err)
	}
	if len(send) > maxCount {
		return nil, c.wrap(fmt.Errorf("allgather of %d floats: more than %d per rank, the most one MPI call carries", len(send), maxCount))
	}
	recv := make([]float32, c.size*len(send))
	if err := c.b.allgather(send, recv); err != nil {
		return nil, c.wrap(fmt.Errorf("allgather of %d floats: %w", len(send), err))
	}
	return recv, nil
}

// Bcast copies root's buf into every other rank's buf.
func (c *Comm) Bcast(buf []float32, root int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.final {
		return ErrFinalized
	}
	if root < 0 || root >= c.size {
		return c.wrap(fmt.Errorf("bcast: root %d out of range [0, %d)", root, c.size))
	}
	if err := c.sameLen("bcast", len(buf)); err != nil {
		return c.wrap(err)
	}
	if err := c.b.bcast(buf, root); err != nil {
		return c.wrap(fmt.Errorf("bcast of %d floats from rank %d: %w", len(buf), root, err))
	}
	return nil
}

// Barrier returns once every rank has entered it.
func (c *Comm) Barrier() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.final {
		return ErrFinalized
	}
	if err := c.b.barrier(); err != nil {
		return c.wrap(fmt.Errorf("barrier: %w", err))
	}
	return nil
}

// Finalize shuts MPI down; every rank calls it once, after its last
// collective. Calling it again does nothing.
func (c *Comm) Finalize() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.final {
		return nil
	}
	c.final = true
	if err := c.b.finalize(); err != nil {
		return c.wrap(fmt.Errorf("finalize: %w", err))
	}
	return nil
}

// sameLen fails, on every rank alike, when the ranks pass different lengths,
// which MPI would otherwise truncate silently or hang on.
func (c *Comm) sameLen(op string, n int) error {
	lo, hi, err := c.b.lenRange(n)
	if err != nil {
		return fmt.Errorf("%s: comparing lengths: %w", op, err)
	}
	if lo != hi {
		return fmt.Errorf("%s: ranks pass different lengths (from %d to %d floats; this rank %d)", op, lo, hi, n)
	}
	return nil
}

func (c *Comm) wrap(err error) error {
	if err == nil || errors.Is(err, ErrFinalized) {
		return err
	}
	if c.size > 1 {
		return fmt.Errorf("dist: rank %d of %d: %w", c.rank, c.size, err)
	}
	return fmt.Errorf("dist: %w", err)
}

// local is the one-process world, where every collective is the identity.
type local struct{}

func (local) allreduceSum([]float32) error         { return nil }
func (local) lenRange(n int) (int, int, error)     { return n, n, nil }
func (local) allgather(send, recv []float32) error { copy(recv, send); return nil }
func (local) bcast([]float32, int) error           { return nil }
func (local) barrier() error                       { return nil }
func (local) finalize() error                      { return nil }

func newLocal(name string) *Comm { return &Comm{size: 1, name: name, b: local{}} }

// launcher reads what mpirun (OMPI_*), PMIx or a PMI launcher such as srun
// put in a rank's environment: whether one started us, and how many ranks
// it started (0 when it does not say).
func launcher(getenv func(string) string) (size int, launched bool, err error) {
	for _, k := range []string{"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"} {
		if v := getenv(k); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return 0, true, fmt.Errorf("dist: %s=%q is not a positive rank count", k, v)
			}
			return n, true, nil
		}
	}
	for _, k := range []string{"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"} {
		if getenv(k) != "" {
			return 0, true, nil
		}
	}
	return 0, false, nil
}
