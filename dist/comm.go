package dist

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ErrFinalized is returned by every collective called after Finalize.
var ErrFinalized = errors.New("dist: communicator already finalized")

// maxCount is the most elements one MPI call may carry: MPI counts are C ints.
// A variable so that a test can make the chunking visible on small buffers.
var maxCount = math.MaxInt32

// DefaultTimeout is how long a collective waits for the other ranks before
// it aborts the job (see SetTimeout): far longer than any step, a kNN
// monitor pass or a checkpoint save that one rank does while the others wait.
const DefaultTimeout = 10 * time.Minute

// EnvTimeout names the environment variable that sets Init's collective
// timeout, in time.ParseDuration's syntax ("30s", "1h"); "0" turns it off.
const EnvTimeout = "SSLZOO_DIST_TIMEOUT"

// stderr receives the line a rank prints before it aborts the job.
var stderr io.Writer = os.Stderr

// Comm is the world of one training job: every process that mpirun started.
// Its collectives must be called by every rank, in the same order, with
// buffers of the same length (Allgather checks this and Bcast checks it;
// AllreduceSum, on the hot path, does not).
//
// A rank that fails calls Abort, so that the others do not wait for it
// forever; a collective that waits longer than the timeout (SetTimeout)
// aborts the job itself, for a rank that died without a word or hangs.
type Comm struct {
	mu      sync.Mutex
	rank    int
	size    int
	name    string
	b       backend
	final   bool
	timeout atomic.Int64 // a time.Duration; 0: none
	stats   counters
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
	// abort ends the job, or (in-process) fails every rank's collectives
	// with cause from now on. line, when not empty, is what a backend that
	// ends the process prints first. It may be called while another
	// goroutine of the rank is blocked in a collective.
	abort(cause error, line string)
}

var (
	worldOnce sync.Once
	world     *Comm
	worldErr  error
)

// Init returns the world communicator, starting MPI on the first call. Every
// later call returns the same Comm (or the same error): MPI can be started
// only once in a process, and not again after Finalize.
//
// Its collectives time out after DefaultTimeout, or after EnvTimeout's
// duration when that is set; a value that does not parse is an error here.
func Init() (*Comm, error) {
	worldOnce.Do(func() {
		// Read before MPI starts, so that a bad value leaves nothing to undo.
		d, err := timeoutFromEnv(os.Getenv)
		if err != nil {
			worldErr = err
			return
		}
		world, worldErr = initWorld()
		if worldErr == nil {
			world.SetTimeout(d)
		}
	})
	return world, worldErr
}

func timeoutFromEnv(getenv func(string) string) (time.Duration, error) {
	v := getenv(EnvTimeout)
	if v == "" {
		return DefaultTimeout, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("dist: %s=%q is not a duration such as 30s or 1h (0 turns the collective timeout off)", EnvTimeout, v)
	}
	return d, nil
}

// SetTimeout sets how long each later collective may wait for the other
// ranks; d ≤ 0 turns the timeout off. A collective that has waited that
// long prints one line to stderr ("dist: rank R of K: barrier has waited
// 10m0s: another rank died or hangs; aborting the job") and aborts the job
// as Abort does; on an in-process world it fails that collective on every
// rank instead. A world of one rank never waits, so has no timeout.
func (c *Comm) SetTimeout(d time.Duration) { c.timeout.Store(int64(max(d, 0))) }

// Timeout is the collective timeout (0: none).
func (c *Comm) Timeout() time.Duration { return time.Duration(c.timeout.Load()) }

// Abort ends the job because this rank failed with err, so that no other
// rank waits for it forever. Under MPI it prints "dist: rank R of K:
// aborting the job: err" to stderr and calls MPI_Abort, which makes mpirun
// kill every rank; it does not return (after Finalize it does nothing). On
// an in-process world every rank blocked in a collective, or entering one
// later, gets the error "dist: rank Q of K: rank R aborted: err" instead,
// and Abort returns. On one process it does nothing. It may be called from
// any goroutine; the first Abort of a world wins.
func (c *Comm) Abort(err error) {
	if c.size == 1 {
		return
	}
	if err == nil {
		err = errors.New("no reason given")
	}
	c.b.abort(err, c.wrap(fmt.Errorf("aborting the job: %w", err)).Error())
}

// call runs one backend collective under the timeout. op names it in the
// timeout's line and in its errors; floats is what this rank sends, for
// Stats.
func (c *Comm) call(op string, floats int, f func() error) error {
	if c.size > 1 {
		defer c.stats.add(floats, time.Now())
	}
	if d := c.Timeout(); d > 0 && c.size > 1 {
		t := time.AfterFunc(d, func() {
			cause := fmt.Errorf("%s has waited %v: another rank died or hangs; aborting the job", op, d)
			fmt.Fprintln(stderr, c.wrap(cause))
			c.b.abort(cause, "")
		})
		defer t.Stop()
	}
	err := f()
	var ae *abortError
	if err == nil || errors.As(err, &ae) {
		return err // an abort says what happened on its own
	}
	return fmt.Errorf("%s: %w", op, err)
}

// abortError is a collective's error after an abort. by is the rank that
// aborted, or -1 when it is the rank that reports it.
type abortError struct {
	by    int
	cause error
}

func (e *abortError) Error() string {
	if e.by < 0 {
		return e.cause.Error()
	}
	return fmt.Sprintf("rank %d aborted: %v", e.by, e.cause)
}

func (e *abortError) Unwrap() error { return e.cause }

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
	if err := c.call(fmt.Sprintf("allreduce of %d floats", len(buf)), len(buf), func() error { return c.b.allreduceSum(buf) }); err != nil {
		return err
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
	if err := c.call(fmt.Sprintf("allgather of %d floats", len(send)), len(send), func() error { return c.b.allgather(send, recv) }); err != nil {
		return nil, c.wrap(err)
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
	if err := c.call(fmt.Sprintf("bcast of %d floats from rank %d", len(buf), root), len(buf), func() error { return c.b.bcast(buf, root) }); err != nil {
		return c.wrap(err)
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
	if err := c.call("barrier", 0, c.b.barrier); err != nil {
		return c.wrap(err)
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
	var lo, hi int
	err := c.call(op+": comparing lengths", 2, func() (err error) { lo, hi, err = c.b.lenRange(n); return err })
	if err != nil {
		return err
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
func (local) abort(error, string)                  {}

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
