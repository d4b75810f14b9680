package eval

import (
	"math/rand/v2"
	"testing"
)

// linearlySeparable draws points labelled by which of classes random
// hyperplanes scores highest, offset and scaled so that standardisation
// matters, with a margin.
func linearlySeparable(rng *rand.Rand, n, d, classes int, w [][]float64) *Features {
	f := &Features{N: 0, D: d}
	for f.N < n {
		x := make([]float64, d)
		for j := range x {
			x[j] = rng.NormFloat64()
		}
		best, second, arg := -1e9, -1e9, 0
		for c := range classes {
			var s float64
			for j := range x {
				s += w[c][j] * x[j]
			}
			if s > best {
				best, second, arg = s, best, c
			} else if s > second {
				second = s
			}
		}
		if best-second < 0.2 {
			continue
		}
		for j, v := range x {
			f.X = append(f.X, float32(100+50*float64(j)+v*float64(j+1)))
		}
		f.Labels = append(f.Labels, arg)
		f.N++
	}
	return f
}

func TestLinearProbeSeparable(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const d, classes = 10, 4
	w := make([][]float64, classes)
	for c := range w {
		w[c] = make([]float64, d)
		for j := range w[c] {
			w[c][j] = rng.NormFloat64()
		}
	}
	// The probe sees raw features x' = 100 + 50 j + (j+1) x; it has to
	// undo the offsets and scales through standardisation.
	train := linearlySeparable(rng, 2000, d, classes, w)
	test := linearlySeparable(rng, 500, d, classes, w)
	cfg := DefaultLinear()
	cfg.Epochs = 40
	r, err := Linear(train, test, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Top1 < 0.98 || r.N != 500 {
		t.Fatalf("linear probe on separable data: %+v, want top-1 >= 0.98", r)
	}
	// Shuffled labels must not be learnable on test: checks the probe is
	// not somehow reading the labels.
	shuffled := *train
	shuffled.Labels = append([]int(nil), train.Labels...)
	rng.Shuffle(len(shuffled.Labels), func(i, j int) { shuffled.Labels[i], shuffled.Labels[j] = shuffled.Labels[j], shuffled.Labels[i] })
	r2, err := Linear(&shuffled, test, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Top1 > 0.5 {
		t.Fatalf("probe trained on shuffled labels scored %+v", r2)
	}
}

func TestLinearProbeErrors(t *testing.T) {
	f := &Features{N: 2, D: 1, X: []float32{0, 1}, Labels: []int{0, 1}}
	bad := DefaultLinear()
	bad.LR = 0
	if _, err := Linear(f, f, bad); err == nil {
		t.Error("lr 0 accepted")
	}
	if _, err := Linear(f, &Features{N: 1, D: 2, X: []float32{0, 1}, Labels: []int{0}}, DefaultLinear()); err == nil {
		t.Error("width mismatch accepted")
	}
	if _, err := Linear(&Features{}, f, DefaultLinear()); err == nil {
		t.Error("empty train accepted")
	}
}
