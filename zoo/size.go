package zoo

import (
	"fmt"
	"math"
)

// Values is the number of float32 values (parameters and buffers) Build
// allocates for s, computed from the configuration alone, so that an
// architecture read from a file can be weighed before anything is built.
// Float64 keeps a hostile configuration's count from overflowing.
func (s Spec) Values() (float64, error) {
	switch s.Family {
	case "resnet":
		c, err := s.ResNet.withDefaults()
		if err != nil {
			return 0, err
		}
		return resnetValues(c), nil
	case "vit":
		c, err := s.ViT.withDefaults()
		if err != nil {
			return 0, err
		}
		return vitValues(c), nil
	case "bert":
		c, err := s.BERT.withDefaults()
		if err != nil {
			return 0, err
		}
		return bertValues(c), nil
	}
	return 0, fmt.Errorf("zoo: architecture %q has unknown family %q", s.Name, s.Family)
}

// The counts mirror the constructors: a convolution has no bias, a
// BatchNorm holds weight, bias and both running statistics, a LayerNorm
// weight and bias, a Linear its weight and bias.
func convValues(in, out, k float64) float64 { return in * out * k * k }
func bnValues(c float64) float64            { return 4 * c }
func lnValues(c float64) float64            { return 2 * c }
func linearValues(in, out float64) float64  { return in*out + out }

func resnetValues(c ResNetConfig) float64 {
	var widths [4]float64
	for i, base := range []int{64, 128, 256, 512} {
		// scaledWidth in floats: a huge width must not overflow an int.
		widths[i] = math.Max(1, math.Floor(float64(base)*c.Width+0.5))
	}
	stem := 7.0
	if c.Stem == "cifar" {
		stem = 3
	}
	n := convValues(float64(c.InChannels), widths[0], stem) + bnValues(widths[0])
	counts := resnetBlocks[c.Depth]
	in := widths[0]
	for stage, planes := range widths {
		for j := range counts[stage] {
			strided := j == 0 && stage > 0
			out := planes
			if c.Depth == 50 {
				out = 4 * planes
				n += convValues(in, planes, 1) + bnValues(planes) + convValues(planes, planes, 3) + bnValues(planes) + convValues(planes, out, 1) + bnValues(out)
			} else {
				n += convValues(in, planes, 3) + bnValues(planes) + convValues(planes, planes, 3) + bnValues(planes)
			}
			if strided || in != out {
				n += convValues(in, out, 1) + bnValues(out)
			}
			in = out
		}
	}
	if c.NumClasses > 0 {
		n += linearValues(in, float64(c.NumClasses))
	}
	return n
}

func vitValues(c ViTConfig) float64 {
	d, p, g := float64(c.Dim), float64(c.PatchSize), float64(c.Grid())
	hidden := math.Floor(d * c.MLPRatio)
	n := convValues(float64(c.InChannels), d, p) + d + d + (1+g*g)*d // patch projection and its bias, class token, positions
	block := lnValues(d) + linearValues(d, 3*d) + linearValues(d, d) + lnValues(d) + linearValues(d, hidden) + linearValues(hidden, d)
	n += float64(c.Depth)*block + lnValues(d)
	if c.NumClasses > 0 {
		n += linearValues(d, float64(c.NumClasses))
	}
	return n
}

func bertValues(c BERTConfig) float64 {
	h, inter := float64(c.Hidden), float64(c.Intermediate)
	n := float64(c.VocabSize+c.MaxPositions+c.TypeVocabSize)*h + lnValues(h)
	layer := 4*linearValues(h, h) + lnValues(h) + linearValues(h, inter) + linearValues(inter, h) + lnValues(h)
	n += float64(c.Layers) * layer
	if c.Pooler {
		n += linearValues(h, h)
	}
	if c.MLMHead {
		n += linearValues(h, h) + lnValues(h) + float64(c.VocabSize) // the decoder shares the word embeddings
	}
	return n
}
