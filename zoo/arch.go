package zoo

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/sslzoo/sslzoo/nn"
)

// Spec is a named architecture: its family and the configuration its
// constructor takes. Adjust the configuration (e.g. the ViT image and patch
// size, or a classifier size) before calling Build.
type Spec struct {
	Name   string
	Family string // "resnet", "vit" or "bert"
	ResNet ResNetConfig
	ViT    ViTConfig
	BERT   BERTConfig
}

// Backbone is what every registry entry builds.
type Backbone interface {
	nn.Module
	// FeatureDim is the width of the features an SSL method builds on.
	FeatureDim() int
}

// Build constructs the architecture with freshly initialised weights.
func (s Spec) Build(rng *rand.Rand) (Backbone, error) {
	switch s.Family {
	case "resnet":
		return NewResNet(s.ResNet, rng)
	case "vit":
		return NewViT(s.ViT, rng)
	case "bert":
		return NewBERT(s.BERT, rng)
	}
	return nil, fmt.Errorf("zoo: architecture %q has unknown family %q", s.Name, s.Family)
}

// The registry's entries are backbones without classifier heads. ViTs are
// the patch-16 ImageNet models at 224 pixels (vit-tiny-l6, ViT-Tiny cut to 6
// layers, and vit-tiny-144, ViT-Tiny's 12 layers at 144 wide, are ours: they
// keep an MAE encoder under the 8 MB a bundled entry may take in fp16); BERTs are Google's published
// sizes (bert-tiny, bert-mini and bert-small are three of its 24 smaller models) with the
// uncased vocabulary, dropout 0.1, and neither pooler nor MLM head.
var archs = map[string]Spec{
	"resnet18-cifar": {Family: "resnet", ResNet: ResNetConfig{Depth: 18, Stem: "cifar", Width: 1, InChannels: 3}},
	"resnet18":       {Family: "resnet", ResNet: ResNetConfig{Depth: 18, Stem: "imagenet", Width: 1, InChannels: 3}},
	"resnet34":       {Family: "resnet", ResNet: ResNetConfig{Depth: 34, Stem: "imagenet", Width: 1, InChannels: 3}},
	"resnet50":       {Family: "resnet", ResNet: ResNetConfig{Depth: 50, Stem: "imagenet", Width: 1, InChannels: 3}},
	"vit-tiny":       {Family: "vit", ViT: vitSize(192, 12, 3)},
	"vit-tiny-l6":    {Family: "vit", ViT: vitSize(192, 6, 3)},
	"vit-tiny-144":   {Family: "vit", ViT: vitSize(144, 12, 3)},
	"vit-small":      {Family: "vit", ViT: vitSize(384, 12, 6)},
	"vit-base":       {Family: "vit", ViT: vitSize(768, 12, 12)},
	"bert-tiny":      {Family: "bert", BERT: bertSize(2, 128, 2)},
	"bert-mini":      {Family: "bert", BERT: bertSize(4, 256, 4)},
	"bert-small":     {Family: "bert", BERT: bertSize(4, 512, 8)},
	"bert-base":      {Family: "bert", BERT: bertSize(12, 768, 12)},
}

func vitSize(dim, depth, heads int) ViTConfig {
	return ViTConfig{ImageSize: 224, PatchSize: 16, InChannels: 3, Dim: dim, Depth: depth, Heads: heads, MLPRatio: 4, Pool: "cls", Eps: 1e-6}
}

func bertSize(layers, hidden, heads int) BERTConfig {
	return BERTConfig{
		VocabSize: 30522, Hidden: hidden, Layers: layers, Heads: heads, Intermediate: 4 * hidden,
		MaxPositions: 512, TypeVocabSize: 2, Eps: 1e-12, HiddenDropout: 0.1, AttentionDropout: 0.1,
	}
}

// Arch looks up a named architecture, e.g. "resnet18-cifar", "vit-small" or
// "bert-mini".
func Arch(name string) (Spec, error) {
	s, ok := archs[name]
	if !ok {
		return Spec{}, fmt.Errorf("zoo: unknown architecture %q (known: %s)", name, strings.Join(ArchNames(), ", "))
	}
	s.Name = name
	return s, nil
}

// ArchNames lists the registered architectures in sorted order.
func ArchNames() []string {
	names := make([]string, 0, len(archs))
	for n := range archs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
