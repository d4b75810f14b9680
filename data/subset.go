package data

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/sslzoo/sslzoo/data/augment"
)

// Labeled is a Dataset whose labels can be read without decoding images.
type Labeled interface {
	Dataset
	Label(i int) int
}

// Label implements Labeled (-1 when the set has no labels).
func (s *Images) Label(i int) int {
	if s.Labels == nil {
		return -1
	}
	return s.Labels[i]
}

// Label implements Labeled.
func (f *ImageFolder) Label(i int) int { return f.Labels[i] }

// Subset is the samples of a dataset at the given indices, in that order.
type Subset struct {
	Base    Dataset
	Indices []int
}

// Len implements Dataset.
func (s *Subset) Len() int { return len(s.Indices) }

// Get implements Dataset.
func (s *Subset) Get(i int) (*augment.Image, int, error) {
	if i < 0 || i >= len(s.Indices) {
		return nil, 0, fmt.Errorf("subset: sample %d out of range [0,%d)", i, len(s.Indices))
	}
	return s.Base.Get(s.Indices[i])
}

// Label implements Labeled when the base dataset does.
func (s *Subset) Label(i int) int {
	if l, ok := s.Base.(Labeled); ok {
		return l.Label(s.Indices[i])
	}
	return -1
}

// LabelFraction picks a class-balanced fraction of a labelled dataset, as
// semi-supervised evaluation does (1% and 10% of the labels): from each
// class, round(frac * count) samples (at least one), chosen with seed. The
// indices are returned sorted.
func LabelFraction(ds Labeled, frac float64, seed uint64) ([]int, error) {
	if !(frac > 0 && frac <= 1) {
		return nil, fmt.Errorf("label fraction %v: want (0, 1]", frac)
	}
	byClass := map[int][]int{}
	for i := 0; i < ds.Len(); i++ {
		l := ds.Label(i)
		if l < 0 {
			return nil, fmt.Errorf("label fraction: sample %d has no label", i)
		}
		byClass[l] = append(byClass[l], i)
	}
	if len(byClass) == 0 {
		return nil, fmt.Errorf("label fraction: empty dataset")
	}
	classes := make([]int, 0, len(byClass))
	for c := range byClass {
		classes = append(classes, c)
	}
	slices.Sort(classes)
	rng := rand.New(rand.NewPCG(seed, 0x4c4142454c53))
	var out []int
	for _, c := range classes {
		idx := byClass[c]
		k := max(1, int(math.Round(frac*float64(len(idx)))))
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		out = append(out, idx[:k]...)
	}
	slices.Sort(out)
	return out, nil
}
