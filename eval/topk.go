package eval

import "fmt"

// Result is an evaluator's accuracy on N labelled samples, in [0, 1].
type Result struct {
	Top1 float64 `json:"top1"`
	Top5 float64 `json:"top5"`
	N    int     `json:"n"`
}

// rank is the position (from 0) of class c when the scores are sorted in
// descending order, ties going to the lower class index.
func rank(scores []float32, c int) int {
	s, r := scores[c], 0
	for j, v := range scores {
		if v > s || v == s && j < c {
			r++
		}
	}
	return r
}

// TopK scores predictions: scores is [N, classes] row-major and labels has
// N entries. A sample counts for top-k when its label is among the k
// highest-scoring classes (ties go to the lower class index); with fewer
// than 5 classes every sample counts for top-5.
func TopK(scores []float32, classes int, labels []int) (Result, error) {
	if classes < 1 || len(scores) != classes*len(labels) {
		return Result{}, fmt.Errorf("eval: %d scores for %d samples of %d classes", len(scores), len(labels), classes)
	}
	if len(labels) == 0 {
		return Result{}, fmt.Errorf("eval: no samples to score")
	}
	var top1, top5 int
	for i, l := range labels {
		if l < 0 || l >= classes {
			return Result{}, fmt.Errorf("eval: sample %d has label %d outside [0, %d)", i, l, classes)
		}
		r := rank(scores[i*classes:(i+1)*classes], l)
		if r == 0 {
			top1++
		}
		if r < 5 {
			top5++
		}
	}
	n := float64(len(labels))
	return Result{Top1: float64(top1) / n, Top5: float64(top5) / n, N: len(labels)}, nil
}

// numClasses is one more than the largest label of any set.
func numClasses(sets ...[]int) int {
	c := 0
	for _, ls := range sets {
		for _, l := range ls {
			c = max(c, l+1)
		}
	}
	return c
}
