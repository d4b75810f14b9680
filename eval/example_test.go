package eval_test

import (
	"fmt"

	"github.com/sslzoo/sslzoo/eval"
)

// Classify two query points against a labelled bank with lightly's
// weighted kNN, then with a linear probe.
func ExampleKNN() {
	bank := &eval.Features{N: 6, D: 2, X: []float32{
		1, 0.1, 0.9, 0, 1, -0.1, // class 0 points along x
		0.1, 1, 0, 0.9, -0.1, 1, // class 1 points along y
	}, Labels: []int{0, 0, 0, 1, 1, 1}}
	query := &eval.Features{N: 2, D: 2, X: []float32{2, 0.3, 0.2, 3}, Labels: []int{0, 1}}
	r, err := eval.KNN(bank, query, eval.DefaultKNN()) // k 200 > 6: every bank point votes
	if err != nil {
		panic(err)
	}
	fmt.Printf("kNN top-1 %.0f%% top-5 %.0f%% on %d\n", 100*r.Top1, 100*r.Top5, r.N)

	lc := eval.DefaultLinear()
	lc.Batch = 2
	r, err = eval.Linear(bank, query, lc)
	if err != nil {
		panic(err)
	}
	fmt.Printf("linear top-1 %.0f%%\n", 100*r.Top1)
	// Output:
	// kNN top-1 100% top-5 100% on 2
	// linear top-1 100%
}
