package eval

import (
	"math"
	"math/rand/v2"
	"testing"
)

// without returns f minus row i.
func without(f *Features, i int) *Features {
	out := &Features{N: f.N - 1, D: f.D}
	for j := range f.N {
		if j != i {
			out.X = append(out.X, f.Row(j)...)
			out.Labels = append(out.Labels, f.Labels[j])
		}
	}
	return out
}

// TestKNNLeaveOneOutMatchesBrute: each row's scores are those of the brute
// reference with the other rows as the bank (which shifts the indices of
// later rows down by one, keeping their tie order), across a chunk
// boundary and with k both below and above N-1.
func TestKNNLeaveOneOutMatchesBrute(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, c := range []struct{ n, d, classes, k int }{{knnChunk + 9, 7, 4, 5}, {6, 3, 3, 10}} {
		f := randFeatures(rng, c.n, c.d, c.classes)
		scores, classes, err := KNNLeaveOneOutScores(f, KNNConfig{K: c.k, Temperature: 0.5})
		if err != nil {
			t.Fatal(err)
		}
		if classes != numClasses(f.Labels) {
			t.Fatalf("classes %d, want %d", classes, numClasses(f.Labels))
		}
		for i := range f.N {
			q := &Features{N: 1, D: f.D, X: f.Row(i), Labels: f.Labels[i : i+1]}
			want := bruteKNN(without(f, i), q, c.k, 0.5, classes)
			for j, w := range want {
				if g := float64(scores[i*classes+j]); math.Abs(g-w) > 1e-4*math.Max(1, w) {
					t.Fatalf("n %d row %d class %d: score %g, want %g", c.n, i, j, g, w)
				}
			}
		}
	}
}

// TestKNNLeaveOneOutExcludesSelf: rows come in close pairs of different
// classes, so with k 1 a row's nearest other row is always of the wrong
// class (a classifier that counted the row itself would score 100%), and
// with k 3 over two well separated groups of one class each every row is
// right.
func TestKNNLeaveOneOutExcludesSelf(t *testing.T) {
	var f Features
	f.D = 2
	for p := range 6 {
		a := float64(p) * 0.5
		for c := range 2 {
			b := a + 0.01*float64(c)
			f.X = append(f.X, float32(math.Cos(b)), float32(math.Sin(b)))
			f.Labels = append(f.Labels, c)
			f.N++
		}
	}
	r, err := KNNLeaveOneOut(&f, KNNConfig{K: 1, Temperature: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Top1 != 0 || r.N != 12 {
		t.Fatalf("close pairs of different classes: %+v, want top-1 0 over 12", r)
	}
	g := Features{N: 8, D: 2, Labels: []int{0, 0, 0, 0, 1, 1, 1, 1}}
	for i := range 8 {
		a := 0.05 * float64(i%4)
		if i >= 4 {
			a += math.Pi / 2
		}
		g.X = append(g.X, float32(math.Cos(a)), float32(math.Sin(a)))
	}
	if r, err = KNNLeaveOneOut(&g, KNNConfig{K: 3, Temperature: 0.1}); err != nil {
		t.Fatal(err)
	}
	if r.Top1 != 1 {
		t.Fatalf("two separated groups: %+v, want top-1 1", r)
	}
}

func TestKNNLeaveOneOutErrors(t *testing.T) {
	one := &Features{N: 1, D: 2, X: []float32{1, 0}, Labels: []int{0}}
	if _, err := KNNLeaveOneOut(one, DefaultKNN()); err == nil {
		t.Error("one sample: no error")
	}
	two := &Features{N: 2, D: 2, X: []float32{1, 0, 0, 1}, Labels: []int{0, 2}}
	if _, err := KNNLeaveOneOut(two, KNNConfig{K: 0, Temperature: 1}); err == nil {
		t.Error("k 0: no error")
	}
	if _, err := KNNLeaveOneOut(two, KNNConfig{K: 1, Temperature: 1, Classes: 2}); err == nil {
		t.Error("label 2 with 2 classes: no error")
	}
}
