//go:build !(mpi && cgo)

package dist

import (
	"fmt"
	"os"
)

// mpiBuilt says whether this binary can speak MPI.
const mpiBuilt = false

func initWorld() (*Comm, error) {
	n, _, err := launcher(os.Getenv)
	if err != nil {
		return nil, err
	}
	if n > 1 {
		return nil, fmt.Errorf("dist: started as one of %d MPI ranks, but this binary was built without MPI; rebuild it with -tags mpi (make build does where mpicc is on PATH)", n)
	}
	return newLocal("single process (built without -tags mpi)"), nil
}
