package conformance

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"

	"github.com/sslzoo/sslzoo/data/text"
	"github.com/sslzoo/sslzoo/export"
	"github.com/sslzoo/sslzoo/zoo"
	"github.com/sslzoo/sslzoo/zoo/ssl"
)

// Rows of the per-model suite beyond the zoo registry: the exports of the
// masked-modelling methods, built the way `sslzoo export` builds them.
const (
	// ModelMAE is an MAE-initialised ViT-Tiny encoder (4x4 patches on 32x32
	// images, as `sslzoo train mae` builds it) exported over all patches
	// with mean pooling of the normalised patch tokens.
	ModelMAE = "mae-vit-tiny"
	// ModelHFBERT is a BERT written as a Hugging Face folder and read back
	// through zoo.LoadHFBERT, with a configuration outside the registry
	// (Google's BERT-Tiny: 2 layers, 128 wide, 2 heads), exported with mean
	// pooling and its tokenizer in the metadata, as `sslzoo export --hf`.
	ModelHFBERT = "hf-bert-tiny"
)

// ExtraModels lists the suite's rows that are not zoo architectures.
func ExtraModels() []string { return []string{ModelMAE, ModelHFBERT} }

// ModelNames is every row of the per-model suite: the zoo architectures,
// then ExtraModels.
func ModelNames() []string { return append(zoo.ArchNames(), ExtraModels()...) }

// prepareExtra builds one of ExtraModels; ok is false for other names.
func prepareExtra(name string, reduced bool, seed uint64) (b *Backbone, desc string, ok bool, err error) {
	if !slices.Contains(ExtraModels(), name) {
		return nil, "", false, nil
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	switch name {
	case ModelMAE:
		b, desc, err = prepareMAE(reduced, rng)
	case ModelHFBERT:
		b, desc, err = prepareHFBERT(reduced, rng)
	}
	if err != nil {
		return nil, "", true, fmt.Errorf("build %s: %w", name, err)
	}
	return b, desc, true, nil
}

func prepareMAE(reduced bool, rng *rand.Rand) (*Backbone, string, error) {
	spec, err := zoo.Arch("vit-tiny")
	if err != nil {
		return nil, "", err
	}
	c := spec.ViT
	c.ImageSize, c.PatchSize, c.InChannels = 32, 4, 3
	desc := "32x32 input, 4x4 patches"
	if reduced {
		c.Dim = 16 * c.Heads
		desc = fmt.Sprintf("dim %d, %s", c.Dim, desc)
	}
	vit, err := zoo.NewViT(c, rng)
	if err != nil {
		return nil, "", err
	}
	// MAE's own initialisation (Xavier weights, fixed sine-cosine
	// positions) rather than timm's.
	mae, err := ssl.NewMAE(ssl.DefaultMAEConfig(vit, 8, 1, 1), vit, rng)
	if err != nil {
		return nil, "", err
	}
	perturbConstants(mae.Encoder, rng)
	b, err := NewBackbone(ModelMAE, mae.Encoder, BackboneOptions{Pool: export.PoolMean, Metadata: export.Metadata{Method: "mae"}})
	if err != nil {
		return nil, "", err
	}
	return b, desc + ", mean pooling", nil
}

func prepareHFBERT(reduced bool, rng *rand.Rand) (*Backbone, string, error) {
	c := zoo.BERTConfig{VocabSize: 30522, Hidden: 128, Layers: 2, Heads: 2, Intermediate: 512, MaxPositions: 512, TypeVocabSize: 2, Eps: 1e-12}
	desc := "hidden 128, 2 layers"
	if reduced {
		c.VocabSize = 1000
		desc += ", vocab 1000"
	}
	m, err := zoo.NewBERT(c, rng)
	if err != nil {
		return nil, "", err
	}
	perturbConstants(m, rng)
	// A vocabulary of the model's size: the specials, then filler words.
	words := []string{text.PAD, text.UNK, text.CLS, text.SEP, text.MASK}
	for len(words) < c.VocabSize {
		words = append(words, fmt.Sprintf("w%d", len(words)))
	}
	v, err := text.NewVocab(words)
	if err != nil {
		return nil, "", err
	}
	tok, err := text.New(v, text.DefaultConfig())
	if err != nil {
		return nil, "", err
	}
	dir, err := os.MkdirTemp("", "sslzoo-hfbert-")
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(dir)
	if err := zoo.SaveHFBERT(dir, m, tok, nil); err != nil {
		return nil, "", err
	}
	hf, err := zoo.LoadHFBERT(dir)
	if err != nil {
		return nil, "", err
	}
	tc := hf.Tokenizer.Config()
	tc.MaxLen = testSeq
	if tok, err = text.New(hf.Tokenizer.Vocab(), tc); err != nil {
		return nil, "", err
	}
	meta := export.Metadata{Method: "mlm", Extra: map[string]string{"sslzoo.tokenizer": tok.Metadata()}}
	b, err := NewBackbone(ModelHFBERT, hf.Model, BackboneOptions{Seq: testSeq, Pool: export.PoolMean, Metadata: meta})
	if err != nil {
		return nil, "", err
	}
	return b, desc + ", mean pooling", nil
}
