package augment

import "testing"

// Per-op costs on a 28x28 grey image (Fashion-MNIST size) and the 32x32
// views the SimCLR recipe makes from it; for profiling, not assertions.
func BenchmarkOps(b *testing.B) {
	src := testImage(1, 28, 28, 1)
	view := testImage(1, 32, 32, 2)
	rgb := testImage(3, 32, 32, 3)
	rr := NewRandomResizedCrop(32)
	cj := NewColorJitter(0.4, 0.4, 0.4, 0.1)
	rng := newRNG(1)
	for _, bc := range []struct {
		name string
		f    func()
	}{
		{"ResizedCrop20x20to32", func() { ResizedCrop(src, 3, 4, 20, 20, 32, 32) }},
		{"RandomResizedCrop", func() { rr.Apply(src, rng) }},
		{"ColorJitterGrey", func() { cj.Apply(view.Clone(), rng) }},
		{"ColorJitterRGB", func() { cj.Apply(rgb.Clone(), rng) }},
		{"GaussianBlur3", func() { GaussianBlur(view.Clone(), 3, 3, 1, 1) }},
		{"Normalize", func() { Normalize(view.Clone(), []float64{0.5}, []float64{0.25}) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for range b.N {
				bc.f()
			}
		})
	}
}
