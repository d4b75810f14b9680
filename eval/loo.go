package eval

import (
	"fmt"
	"math"

	"github.com/sslzoo/sslzoo/tensor"
)

// KNNLeaveOneOutScores is KNNScores with one labelled set as both bank and
// query, each row classified by the others: its own row is never one of its
// neighbours (a duplicate of it still is). The weighting is KNNScores's:
// cosine similarity, the K most similar other rows (ties go to the lower
// index), and per class the sum of exp(similarity / T). K larger than
// f.N-1 means all the other rows.
func KNNLeaveOneOutScores(f *Features, cfg KNNConfig) (scores []float32, classes int, err error) {
	if err := f.check("kNN leave-one-out"); err != nil {
		return nil, 0, err
	}
	if f.N < 2 {
		return nil, 0, fmt.Errorf("eval: kNN leave-one-out needs at least 2 samples, got %d", f.N)
	}
	if cfg.K < 1 || !(cfg.Temperature > 0) || math.IsInf(cfg.Temperature, 0) {
		return nil, 0, fmt.Errorf("eval: kNN needs k >= 1 and a positive temperature (got k %d, T %g)", cfg.K, cfg.Temperature)
	}
	classes = cfg.Classes
	if classes == 0 {
		classes = numClasses(f.Labels)
	}
	if c := numClasses(f.Labels); c > classes {
		return nil, 0, fmt.Errorf("eval: kNN label %d with %d classes", c-1, classes)
	}
	k := min(cfg.K, f.N-1)
	x := normalized(f)
	scores = make([]float32, f.N*classes)
	sim := make([]float32, knnChunk*f.N)
	for lo := 0; lo < f.N; lo += knnChunk {
		m := min(knnChunk, f.N-lo)
		tensor.Sgemm(false, true, m, f.N, f.D, 1, x[lo*f.D:], f.D, x, f.D, 0, sim, f.N)
		for r := range m {
			// Below every cosine (>= -1), so the row itself is never kept
			// while k <= N-1 others exist.
			sim[r*f.N+lo+r] = float32(math.Inf(-1))
		}
		tensor.Parallel(m, f.N*8, func(r0, r1 int) {
			h := make(neighbours, 0, k)
			acc := make([]float64, classes)
			for r := r0; r < r1; r++ {
				h = h.topK(sim[r*f.N:(r+1)*f.N], k)
				clear(acc)
				for _, nb := range h {
					acc[f.Labels[nb.idx]] += math.Exp(float64(nb.sim) / cfg.Temperature)
				}
				out := scores[(lo+r)*classes : (lo+r+1)*classes]
				for c, v := range acc {
					out[c] = float32(v)
				}
			}
		})
	}
	return scores, classes, nil
}

// KNNLeaveOneOut classifies every row of f by its weighted neighbours among
// the other rows and reports top-1/top-5 accuracy: the kNN protocol for a
// labelled set too small to split, such as the 500 Brown Corpus documents.
func KNNLeaveOneOut(f *Features, cfg KNNConfig) (Result, error) {
	scores, classes, err := KNNLeaveOneOutScores(f, cfg)
	if err != nil {
		return Result{}, err
	}
	return TopK(scores, classes, f.Labels)
}
