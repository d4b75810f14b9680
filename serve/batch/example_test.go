package batch_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sslzoo/sslzoo/serve/batch"
)

// Three clients submit at once; their rows run together in one batch and
// each gets its own answer back.
func ExampleBatcher() {
	var sizes []int
	b, err := batch.New(batch.Config{MaxRows: 8, MaxDelay: 200 * time.Millisecond},
		func(items []string) ([]int, error) {
			sizes = append(sizes, len(items)) // one worker: no lock needed
			out := make([]int, len(items))
			for i, s := range items {
				out[i] = len(s)
			}
			return out, nil
		})
	if err != nil {
		fmt.Println(err)
		return
	}
	var wg sync.WaitGroup
	answers := make([]int, 3)
	for i, word := range []string{"a", "bb", "ccc"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i], _ = b.Submit(context.Background(), 1, word)
		}()
	}
	wg.Wait()
	b.Close()
	fmt.Println(answers, "in", len(sizes), "batch")
	// Output: [1 2 3] in 1 batch
}
