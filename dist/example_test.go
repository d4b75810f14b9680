package dist_test

import (
	"fmt"
	"log"

	"github.com/sslzoo/sslzoo/dist"
)

// A training step averages its gradients over the ranks. Run by hand, the
// world is this one process and the mean is the gradient itself; under
// mpirun -np K with a -tags mpi binary, every rank ends with the same mean.
func Example() {
	c, err := dist.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Finalize()
	grads := [][]float32{{0.5, -1}, {2}}
	r := dist.NewReducer(c, dist.DefaultBucketBytes) // keep it across steps
	if err := r.AllreduceMean(grads); err != nil {
		log.Fatal(err)
	}
	fmt.Println("rank", c.Rank(), "of", c.Size(), grads)
	// Output: rank 0 of 1 [[0.5 -1] [2]]
}
