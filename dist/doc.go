// Package dist is collective communication between the processes of one
// data-parallel training job: allreduce, allgather, broadcast and barrier on
// float32 buffers, plus a Reducer that allreduces many gradient tensors in a
// few large buckets.
//
// The transport is Open MPI (Debian libopenmpi-dev and openmpi-bin, 4.1),
// reached through a small cgo binding of our own over mpi.h in mpi.go, built
// only with the build tag mpi:
//
//	go build -tags mpi ./cmd/sslzoo   # make build adds the tag where mpicc is installed
//	mpirun -np 2 bin/sslzoo ...
//
// Why not github.com/sbromberger/gompi: the Go module proxy refuses it (403,
// "This module version is not available") and GitHub is not reachable here,
// so it cannot be a dependency at all. Its API would also not fit as is: it
// drops MPI's return codes (no errors), leaves MPI_COMM_WORLD on
// MPI_ERRORS_ARE_FATAL, exits through log.Fatalf when a thread level is
// missing, and has no in-place allreduce. The six collectives we need fit in
// one file.
//
// Without the tag (or without cgo) the package is the single-process world:
// Size is 1, Rank is 0, and every collective is the identity, which is what a
// collective over one rank is. A binary built that way refuses to start when
// mpirun launched it as one of several ranks, rather than have each rank train
// alone on the full data. A binary built with the tag but started without
// mpirun also runs as one process, and never calls MPI_Init.
//
// MPI is initialised with MPI_THREAD_SERIALIZED because goroutines move
// between OS threads; a Comm serialises its own calls with a mutex.
package dist
