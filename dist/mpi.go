//go:build mpi && cgo

package dist

/*
#cgo pkg-config: ompi
#include <mpi.h>

// MPI_COMM_WORLD and MPI_IN_PLACE are macros over Open MPI's globals, which
// cgo cannot name, so every call that uses them goes through a wrapper.

static int sslzoo_mpi_init(int *rank, int *size, int *provided) {
	int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, provided);
	if (rc != MPI_SUCCESS) return rc;
	// Errors come back as codes, so that Go can report them, instead of
	// MPI aborting the whole job from inside the library.
	rc = MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
	if (rc != MPI_SUCCESS) return rc;
	rc = MPI_Comm_rank(MPI_COMM_WORLD, rank);
	if (rc != MPI_SUCCESS) return rc;
	return MPI_Comm_size(MPI_COMM_WORLD, size);
}

static int sslzoo_mpi_allreduce_sum(float *buf, int n) {
	return MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}

static int sslzoo_mpi_len_range(long long n, long long *lo, long long *hi) {
	long long v[2] = {n, -n};
	int rc = MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
	*hi = v[0];
	*lo = -v[1];
	return rc;
}

static int sslzoo_mpi_allgather(const float *send, float *recv, int n) {
	return MPI_Allgather(send, n, MPI_FLOAT, recv, n, MPI_FLOAT, MPI_COMM_WORLD);
}

static int sslzoo_mpi_bcast(float *buf, int n, int root) {
	return MPI_Bcast(buf, n, MPI_FLOAT, root, MPI_COMM_WORLD);
}

static int sslzoo_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }

static int sslzoo_mpi_running(void) {
	int init = 0, fin = 0;
	MPI_Initialized(&init);
	MPI_Finalized(&fin);
	return init && !fin;
}

static void sslzoo_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

static int sslzoo_mpi_error_string(int code, char *buf) {
	int len = 0;
	if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) return 0;
	return len;
}

static int sslzoo_mpi_library_version(char *buf) {
	int len = 0;
	if (MPI_Get_library_version(buf, &len) != MPI_SUCCESS) return 0;
	return len;
}
*/
import "C"

import (
	"fmt"
	"os"
	"strings"
	"time"
	"unsafe"
)

const mpiBuilt = true

func initWorld() (*Comm, error) {
	n, launched, err := launcher(os.Getenv)
	if err != nil {
		return nil, err
	}
	if !launched {
		// Started by hand: run as today. MPI's singleton start would spawn
		// a daemon for a world of one, to no purpose.
		return newLocal("single process (not started by mpirun)"), nil
	}
	var rank, size, provided C.int
	if rc := C.sslzoo_mpi_init(&rank, &size, &provided); rc != C.MPI_SUCCESS {
		return nil, fmt.Errorf("dist: MPI_Init_thread: %w", mpiError(rc))
	}
	if provided < C.MPI_THREAD_SERIALIZED {
		C.MPI_Finalize()
		return nil, fmt.Errorf("dist: this MPI library gives thread level %d, below MPI_THREAD_SERIALIZED, which Go needs because goroutines move between OS threads", int(provided))
	}
	if n > 0 && int(size) != n {
		C.MPI_Finalize()
		return nil, fmt.Errorf("dist: the launcher said %d ranks, MPI_COMM_WORLD has %d", n, int(size))
	}
	return &Comm{rank: int(rank), size: int(size), name: libraryVersion(), b: mpiWorld{}}, nil
}

// mpiWorld is MPI_COMM_WORLD.
type mpiWorld struct{}

func (mpiWorld) allreduceSum(buf []float32) error {
	// Chunked, so that buffers past a C int's count still go through.
	for len(buf) > 0 {
		n := min(len(buf), maxCount)
		if rc := C.sslzoo_mpi_allreduce_sum(floats(buf), C.int(n)); rc != C.MPI_SUCCESS {
			return mpiError(rc)
		}
		buf = buf[n:]
	}
	return nil
}

func (mpiWorld) lenRange(n int) (int, int, error) {
	var lo, hi C.longlong
	if rc := C.sslzoo_mpi_len_range(C.longlong(n), &lo, &hi); rc != C.MPI_SUCCESS {
		return 0, 0, mpiError(rc)
	}
	return int(lo), int(hi), nil
}

func (mpiWorld) allgather(send, recv []float32) error {
	if rc := C.sslzoo_mpi_allgather(floats(send), floats(recv), C.int(len(send))); rc != C.MPI_SUCCESS {
		return mpiError(rc)
	}
	return nil
}

func (mpiWorld) bcast(buf []float32, root int) error {
	for len(buf) > 0 {
		n := min(len(buf), maxCount)
		if rc := C.sslzoo_mpi_bcast(floats(buf), C.int(n), C.int(root)); rc != C.MPI_SUCCESS {
			return mpiError(rc)
		}
		buf = buf[n:]
	}
	return nil
}

func (mpiWorld) barrier() error {
	if rc := C.sslzoo_mpi_barrier(); rc != C.MPI_SUCCESS {
		return mpiError(rc)
	}
	return nil
}

// abortGrace is how long MPI_Abort may take to end the job before the
// process exits by itself; mpirun then takes the other ranks down for a
// process that ended without MPI_Finalize.
const abortGrace = 30 * time.Second

func (mpiWorld) abort(_ error, line string) {
	if C.sslzoo_mpi_running() == 0 {
		return // after Finalize there is no job left to end
	}
	if line != "" {
		fmt.Fprintln(stderr, line)
	}
	// MPI_Abort may come from a timer's goroutine while another thread is
	// blocked in a collective (beyond MPI_THREAD_SERIALIZED); should it
	// hang or return, the process ends all the same.
	time.AfterFunc(abortGrace, func() { os.Exit(1) })
	C.sslzoo_mpi_abort(1)
	os.Exit(1)
}

func (mpiWorld) finalize() error {
	if rc := C.MPI_Finalize(); rc != C.MPI_SUCCESS {
		return mpiError(rc)
	}
	return nil
}

// floats hands a Go slice to MPI; float32 holds no pointers, and no call
// here keeps the buffer past its return, so cgo's rules allow it.
func floats(b []float32) *C.float { return (*C.float)(unsafe.Pointer(unsafe.SliceData(b))) }

// mpiError is an MPI return code with the library's own words for it.
type mpiError C.int

func (e mpiError) Error() string {
	var buf [C.MPI_MAX_ERROR_STRING]C.char
	n := C.sslzoo_mpi_error_string(C.int(e), &buf[0])
	if n == 0 {
		return fmt.Sprintf("MPI error %d", int(e))
	}
	return fmt.Sprintf("MPI error %d: %s", int(e), C.GoStringN(&buf[0], n))
}

func libraryVersion() string {
	var buf [C.MPI_MAX_LIBRARY_VERSION_STRING]C.char
	n := C.sslzoo_mpi_library_version(&buf[0])
	v := strings.TrimSpace(C.GoStringN(&buf[0], n))
	// Open MPI's string runs on with its repository tag and date after a comma.
	if i := strings.IndexByte(v, ','); i > 0 {
		v = v[:i]
	}
	if v == "" {
		v = "MPI"
	}
	return v
}
