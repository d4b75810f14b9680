package main

import (
	"fmt"
	"math/rand/v2"

	"github.com/sslzoo/sslzoo/data/augment"
	"github.com/sslzoo/sslzoo/zoo"
	"github.com/sslzoo/sslzoo/zoo/ssl"
)

// maeUsage is the one-line description of `sslzoo train mae`.
const maeUsage = "MAE: ViT encoder on 25% of the patches, light decoder, pixel loss on the hidden ones, AdamW + warmup-cosine"

// maeViews is MAE's single-view pipeline: RandomResizedCrop with scale
// (0.2, 1) and a horizontal flip (main_pretrain.py; sslzoo resizes
// bilinearly where the reference uses bicubic), then normalisation.
// viewPipelines adds the RGB conversion for folder images.
func maeViews(spec runSpec) []augment.Transform {
	c := augment.Compose{
		augment.RandomResizedCrop{H: spec.Size, W: spec.Size, Scale: [2]float64{0.2, 1}},
		augment.RandomHorizontalFlip{P: 0.5},
		augment.Normalization{Mean: spec.Mean, Std: spec.Std},
	}
	return []augment.Transform{c}
}

// buildMAE wraps a ViT backbone in MAE with the recipe scaled to the run,
// and the run's learning-rate override.
func buildMAE(spec runSpec, enc ssl.Encoder, run ssl.Run, rng *rand.Rand) (ssl.Method, error) {
	vit, ok := enc.(*zoo.ViT)
	if !ok {
		return nil, fmt.Errorf("mae needs a ViT backbone (--arch vit-tiny, vit-small, ...), not %s", spec.Arch)
	}
	c := ssl.DefaultMAEConfig(vit, run.Batch, run.StepsPerEpoch, run.Epochs)
	if spec.LR > 0 {
		c.Optim.LR = spec.LR
	}
	return ssl.NewMAE(c, vit, rng)
}
