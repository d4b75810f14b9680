package eval

import (
	"fmt"
	"math"

	"github.com/sslzoo/sslzoo/tensor"
)

// KNNConfig configures the weighted kNN classifier.
type KNNConfig struct {
	K           int     // neighbours; more than the bank holds means all of them
	Temperature float64 // neighbour weight exp(similarity / Temperature)
	// Classes is the number of classes; 0 means one more than the largest
	// label in bank or query.
	Classes int
}

// DefaultKNN is lightly's benchmark setting: k = 200, temperature 0.1.
func DefaultKNN() KNNConfig { return KNNConfig{K: 200, Temperature: 0.1} }

// normalized returns a copy of f's rows scaled to unit L2 norm (rows of
// norm below 1e-12 are divided by 1e-12, as torch.nn.functional.normalize).
func normalized(f *Features) []float32 {
	out := make([]float32, len(f.X))
	for i := range f.N {
		row := f.Row(i)
		var ss float64
		for _, v := range row {
			ss += float64(v) * float64(v)
		}
		inv := 1 / math.Max(math.Sqrt(ss), 1e-12)
		o := out[i*f.D : (i+1)*f.D]
		for j, v := range row {
			o[j] = float32(float64(v) * inv)
		}
	}
	return out
}

// knnChunk is the number of query rows whose similarities to the whole
// bank are held at once (chunk x bank floats).
const knnChunk = 128

// KNNScores returns the weighted kNN class scores [query.N, classes] for
// every query row against the labelled bank: cosine similarities, the K
// most similar bank rows (ties go to the lower bank index), and for each
// class the sum of exp(similarity / T) over the neighbours of that class.
func KNNScores(bank, query *Features, cfg KNNConfig) (scores []float32, classes int, err error) {
	if err := bank.check("kNN bank"); err != nil {
		return nil, 0, err
	}
	if err := query.check("kNN query"); err != nil {
		return nil, 0, err
	}
	if bank.D != query.D {
		return nil, 0, fmt.Errorf("eval: kNN bank has %d features per sample, query %d", bank.D, query.D)
	}
	if cfg.K < 1 || !(cfg.Temperature > 0) || math.IsInf(cfg.Temperature, 0) {
		return nil, 0, fmt.Errorf("eval: kNN needs k >= 1 and a positive temperature (got k %d, T %g)", cfg.K, cfg.Temperature)
	}
	classes = cfg.Classes
	if classes == 0 {
		classes = numClasses(bank.Labels, query.Labels)
	}
	if c := numClasses(bank.Labels); c > classes {
		return nil, 0, fmt.Errorf("eval: kNN bank label %d with %d classes", c-1, classes)
	}
	k := min(cfg.K, bank.N)
	b, q := normalized(bank), normalized(query)
	scores = make([]float32, query.N*classes)
	sim := make([]float32, knnChunk*bank.N)
	for lo := 0; lo < query.N; lo += knnChunk {
		m := min(knnChunk, query.N-lo)
		tensor.Sgemm(false, true, m, bank.N, bank.D, 1, q[lo*query.D:], query.D, b, bank.D, 0, sim, bank.N)
		tensor.Parallel(m, bank.N*8, func(r0, r1 int) {
			h := make(neighbours, 0, k)
			for r := r0; r < r1; r++ {
				h = h.topK(sim[r*bank.N:(r+1)*bank.N], k)
				out := scores[(lo+r)*classes : (lo+r+1)*classes]
				acc := make([]float64, classes)
				for _, nb := range h {
					acc[bank.Labels[nb.idx]] += math.Exp(float64(nb.sim) / cfg.Temperature)
				}
				for c, v := range acc {
					out[c] = float32(v)
				}
			}
		})
	}
	return scores, classes, nil
}

// KNN classifies every query row by its weighted neighbours in the bank
// and reports top-1/top-5 accuracy against the query labels.
func KNN(bank, query *Features, cfg KNNConfig) (Result, error) {
	scores, classes, err := KNNScores(bank, query, cfg)
	if err != nil {
		return Result{}, err
	}
	return TopK(scores, classes, query.Labels)
}

type neighbour struct {
	sim float32
	idx int
}

// neighbours is a min-heap on (similarity, then higher index first): the
// root is the weakest of the k kept, the one a better candidate replaces.
type neighbours []neighbour

// weaker orders a before b when a loses to b: lower similarity, or equal
// similarity and a higher bank index.
func weaker(a, b neighbour) bool { return a.sim < b.sim || a.sim == b.sim && a.idx > b.idx }

// topK refills h with the k best entries of sims.
func (h neighbours) topK(sims []float32, k int) neighbours {
	h = h[:0]
	for i, s := range sims {
		nb := neighbour{s, i}
		if len(h) < k {
			h = append(h, nb)
			h.up(len(h) - 1)
			continue
		}
		// Later indices lose ties, so only a strictly higher similarity
		// displaces the root.
		if s > h[0].sim {
			h[0] = nb
			h.down(0)
		}
	}
	return h
}

func (h neighbours) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !weaker(h[i], h[p]) {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (h neighbours) down(i int) {
	for {
		l, s := 2*i+1, i
		if l < len(h) && weaker(h[l], h[s]) {
			s = l
		}
		if r := l + 1; r < len(h) && weaker(h[r], h[s]) {
			s = r
		}
		if s == i {
			return
		}
		h[i], h[s] = h[s], h[i]
		i = s
	}
}
