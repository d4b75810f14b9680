package data

import (
	"slices"
	"testing"
)

func TestLabelFractionBalanced(t *testing.T) {
	ds := synthetic(1000, 1, 2, 2) // labels i % 10: 100 per class
	idx, err := LabelFraction(ds, 0.1, 3)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[int]int{}
	for _, i := range idx {
		counts[ds.Label(i)]++
	}
	if len(idx) != 100 || len(counts) != 10 {
		t.Fatalf("%d samples over %d classes", len(idx), len(counts))
	}
	for c, n := range counts {
		if n != 10 {
			t.Fatalf("class %d: %d samples", c, n)
		}
	}
	again, _ := LabelFraction(ds, 0.1, 3)
	other, _ := LabelFraction(ds, 0.1, 4)
	if !slices.Equal(idx, again) || slices.Equal(idx, other) {
		t.Fatal("selection is not a function of the seed")
	}
	one, _ := LabelFraction(ds, 0.001, 3) // rounds to 0: one per class
	if len(one) != 10 {
		t.Fatalf("tiny fraction: %d samples", len(one))
	}
	sub := &Subset{Base: ds, Indices: idx}
	m, label, err := sub.Get(2)
	if err != nil || label != ds.Label(idx[2]) || m.Pix[0] != float32(idx[2]*7%256)/255 || sub.Label(2) != label {
		t.Fatalf("Subset.Get: %v %d", err, label)
	}
	if _, err := LabelFraction(ds, 0, 1); err == nil {
		t.Fatal("fraction 0: no error")
	}
	if _, err := LabelFraction(&Images{Name: "nolabels", N: 2, C: 1, H: 1, W: 1, Pix: []uint8{0, 0}}, 0.5, 1); err == nil {
		t.Fatal("unlabelled set: no error")
	}
}
