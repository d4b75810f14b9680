package autograd

import (
	"slices"
	"testing"

	"github.com/sslzoo/sslzoo/tensor"
)

func TestEmbeddingGrad(t *testing.T) {
	cases := []gradCase{
		{name: "[6,3]ids2x2", shapes: [][]int{{6, 3}},
			f: func(tp *Tape, in []*Var) *Var { return tp.Embedding(in[0], []int{0, 5, 5, 2}, []int{2, 2}) }},
		{name: "[4,5]ids1", shapes: [][]int{{4, 5}},
			f: func(tp *Tape, in []*Var) *Var { return tp.Embedding(in[0], []int{3}, []int{1}) }},
	}
	runGradCases(t, cases)
}

func TestEmbeddingForward(t *testing.T) {
	tp := NewTape()
	w := NewParam("w", tensor.FromSlice([]float32{0, 1, 10, 11, 20, 21}, 3, 2))
	y := tp.Embedding(w, []int{2, 0, 2}, []int{1, 3})
	if !slices.Equal(y.Shape(), []int{1, 3, 2}) || !slices.Equal(y.Value.Data, []float32{20, 21, 0, 1, 20, 21}) {
		t.Fatalf("got %v", y.Value)
	}
	if err := tp.BackwardWith(y, tensor.FromSlice([]float32{1, 2, 3, 4, 5, 6}, 1, 3, 2)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(w.Grad.Data, []float32{3, 4, 0, 0, 6, 8}) {
		t.Fatalf("grad %v", w.Grad.Data)
	}
	for name, bad := range map[string]func(){
		"id":    func() { tp.Embedding(w, []int{3}, []int{1}) },
		"neg":   func() { tp.Embedding(w, []int{-1}, []int{1}) },
		"shape": func() { tp.Embedding(w, []int{0, 1}, []int{3}) },
	} {
		if Catch(bad) == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Many repeated ids: the column-split scatter must add every occurrence.
func TestEmbeddingLargeGrad(t *testing.T) {
	const v, d, n = 50, 96, 700
	w := NewParam("w", opRand(1, fillUniform, v, d))
	ids := make([]int, n)
	for i := range ids {
		ids[i] = (i * 7) % v
	}
	tp := NewTape()
	y := tp.Embedding(w, ids, []int{n})
	g := opRand(2, fillUniform, n, d)
	if err := tp.BackwardWith(y, g); err != nil {
		t.Fatal(err)
	}
	want := make([]float64, v*d)
	for k, id := range ids {
		for i := range d {
			want[id*d+i] += float64(g.Data[k*d+i])
		}
	}
	if err := opClose(w.Grad.Data, want, 1e-5); err != nil {
		t.Fatal(err)
	}
}
