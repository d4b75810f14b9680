package eval

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// bruteKNN is the reference: float64 cosine similarities, a full sort
// (higher similarity first, then lower bank index), the first k.
func bruteKNN(bank, query *Features, k int, temp float64, classes int) []float64 {
	norm := func(v []float32) []float64 {
		var ss float64
		for _, x := range v {
			ss += float64(x) * float64(x)
		}
		n := math.Max(math.Sqrt(ss), 1e-12)
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = float64(x) / n
		}
		return out
	}
	out := make([]float64, query.N*classes)
	for q := range query.N {
		qv := norm(query.Row(q))
		type cand struct {
			sim float64
			idx int
		}
		cs := make([]cand, bank.N)
		for i := range bank.N {
			bv := norm(bank.Row(i))
			var s float64
			for j := range bv {
				s += qv[j] * bv[j]
			}
			cs[i] = cand{s, i}
		}
		sort.SliceStable(cs, func(a, b int) bool { return cs[a].sim > cs[b].sim })
		for _, c := range cs[:min(k, len(cs))] {
			out[q*classes+bank.Labels[c.idx]] += math.Exp(c.sim / temp)
		}
	}
	return out
}

func randFeatures(rng *rand.Rand, n, d, classes int) *Features {
	f := &Features{N: n, D: d, X: make([]float32, n*d), Labels: make([]int, n)}
	for i := range f.X {
		f.X[i] = float32(rng.NormFloat64())
	}
	for i := range f.Labels {
		f.Labels[i] = rng.IntN(classes)
	}
	return f
}

// tiedFeatures draws rows from a few directions whose cosine similarities
// are exact in float32 (0, 0.6, 0.8, 1 and their negatives), so many
// neighbours tie and the tie rule decides which are kept.
func tiedFeatures(rng *rand.Rand, n, classes int) *Features {
	dirs := [][]float32{{1, 0, 0}, {0, 1, 0}, {0.6, 0.8, 0}, {0.8, 0.6, 0}, {0, 0, 1}, {-1, 0, 0}, {2, 0, 0}}
	f := &Features{N: n, D: 3, Labels: make([]int, n)}
	for i := range n {
		f.X = append(f.X, dirs[rng.IntN(len(dirs))]...)
		f.Labels[i] = rng.IntN(classes)
	}
	return f
}

func TestKNNMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	cases := []struct {
		name        string
		bank, query *Features
		k, classes  int
		temp        float64
	}{
		{"random", randFeatures(rng, 300, 16, 5), randFeatures(rng, 150, 16, 5), 20, 5, 0.1},
		{"random k=1", randFeatures(rng, 50, 8, 3), randFeatures(rng, 40, 8, 3), 1, 3, 0.1},
		{"k > N", randFeatures(rng, 30, 8, 4), randFeatures(rng, 20, 8, 4), 200, 4, 0.1},
		{"ties", tiedFeatures(rng, 120, 4), tiedFeatures(rng, 60, 4), 25, 4, 0.1},
		{"ties k=7 T=0.5", tiedFeatures(rng, 40, 3), tiedFeatures(rng, 30, 3), 7, 3, 0.5},
		// More query rows than one chunk of similarities.
		{"chunks", randFeatures(rng, 64, 4, 10), randFeatures(rng, 2*knnChunk+5, 4, 10), 10, 10, 0.07},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, classes, err := KNNScores(c.bank, c.query, KNNConfig{K: c.k, Temperature: c.temp, Classes: c.classes})
			if err != nil {
				t.Fatal(err)
			}
			if classes != c.classes {
				t.Fatalf("classes %d, want %d", classes, c.classes)
			}
			want := bruteKNN(c.bank, c.query, c.k, c.temp, c.classes)
			for i := range want {
				if d := math.Abs(float64(got[i]) - want[i]); d > 1e-4*math.Max(1, want[i]) {
					t.Fatalf("score %d (query %d class %d) = %g, want %g", i, i/classes, i%classes, got[i], want[i])
				}
			}
		})
	}
}

// A case small enough to work out by hand.
func TestKNNByHand(t *testing.T) {
	bank := &Features{N: 4, D: 2, X: []float32{
		1, 0, // class 0, sim 1 with the query
		0, 3, // class 1, sim 0
		1, 1, // class 1, sim 1/sqrt(2)
		-2, 0, // class 0, sim -1
	}, Labels: []int{0, 1, 1, 0}}
	query := &Features{N: 1, D: 2, X: []float32{5, 0}, Labels: []int{1}}
	scores, _, err := KNNScores(bank, query, KNNConfig{K: 2, Temperature: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{math.Exp(10), math.Exp(10 / math.Sqrt2)}
	for c, w := range want {
		if math.Abs(float64(scores[c])-w)/w > 1e-5 {
			t.Fatalf("class %d score %g, want %g", c, scores[c], w)
		}
	}
	r, err := KNN(bank, query, KNNConfig{K: 2, Temperature: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Top1 != 0 || r.Top5 != 1 || r.N != 1 {
		t.Fatalf("result %+v, want top1 0, top5 1 (label 1 ranks second)", r)
	}
}

// Two well separated clusters: kNN must classify (almost) all correctly.
func TestKNNClusters(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	mk := func(n int) *Features {
		f := &Features{N: n, D: 8, Labels: make([]int, n)}
		for i := range n {
			c := i % 3
			f.Labels[i] = c
			for j := range 8 {
				v := 0.3 * rng.NormFloat64()
				if j == c {
					v += 3
				}
				f.X = append(f.X, float32(v))
			}
		}
		return f
	}
	r, err := KNN(mk(300), mk(90), DefaultKNN())
	if err != nil {
		t.Fatal(err)
	}
	if r.Top1 < 0.98 || r.Top5 != 1 {
		t.Fatalf("result %+v on separated clusters", r)
	}
}

func TestKNNErrors(t *testing.T) {
	ok := &Features{N: 2, D: 2, X: []float32{1, 0, 0, 1}, Labels: []int{0, 1}}
	cases := []struct {
		name        string
		bank, query *Features
		cfg         KNNConfig
	}{
		{"empty bank", &Features{}, ok, DefaultKNN()},
		{"width mismatch", ok, &Features{N: 1, D: 3, X: []float32{1, 2, 3}, Labels: []int{0}}, DefaultKNN()},
		{"k 0", ok, ok, KNNConfig{K: 0, Temperature: 0.1}},
		{"temperature 0", ok, ok, KNNConfig{K: 3, Temperature: 0}},
		{"unlabelled", &Features{N: 1, D: 2, X: []float32{1, 0}, Labels: []int{-1}}, ok, DefaultKNN()},
		{"too few classes", ok, ok, KNNConfig{K: 3, Temperature: 0.1, Classes: 1}},
	}
	for _, c := range cases {
		if _, err := KNN(c.bank, c.query, c.cfg); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

func TestTopK(t *testing.T) {
	scores := []float32{
		0.1, 0.5, 0.2, 0.0, 0.0, 0.0, // label 1: top-1
		0.9, 0.5, 0.5, 0.4, 0.3, 0.2, // label 2: ties with class 1, ranks third
		0.1, 0.2, 0.3, 0.4, 0.5, 0.6, // label 0: ranks sixth
		0.3, 0.3, 0.3, 0.3, 0.3, 0.3, // label 4: ties everywhere, ranks fifth
	}
	r, err := TopK(scores, 6, []int{1, 2, 0, 4})
	if err != nil {
		t.Fatal(err)
	}
	if r.Top1 != 0.25 || r.Top5 != 0.75 || r.N != 4 {
		t.Fatalf("%+v, want top1 0.25 top5 0.75", r)
	}
	if _, err := TopK(scores, 6, []int{1, 2, 0, 6}); err == nil {
		t.Fatal("label out of range accepted")
	}
	if _, err := TopK(scores, 6, []int{1}); err == nil {
		t.Fatal("size mismatch accepted")
	}
}
