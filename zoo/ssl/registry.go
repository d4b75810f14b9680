package ssl

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/sslzoo/sslzoo/zoo"
)

// Run describes a training run, which the recipes scale to: the batch size
// (learning rates follow the linear scaling rule) and the schedule length
// (warmup, cosine decay, momentum schedules, prototype freezing), plus the
// run's choices on top of the recipe.
type Run struct {
	Batch, StepsPerEpoch, Epochs int
	// Recipe is RecipePaper (also "") or RecipeCIFAR; MAE has the paper's
	// recipe only.
	Recipe string
	// LR, when positive, replaces the recipe's peak learning rate; the
	// final rate keeps its ratio to the peak.
	LR float64
	// Queue, when positive, is MoCo v2's queue length; other methods have
	// no queue to size and ignore it.
	Queue int
	// Size is the side of the training crops (0 means 32); Jigsaw cuts
	// its tiles from them, the other methods ignore it.
	Size int
	// Permutations is Jigsaw's number of puzzle classes (0 means
	// DefaultJigsawPermutations).
	Permutations int
	// Clusters, when positive, is DeepCluster's k and each DeepCluster v2
	// head's number of prototypes (0 means DefaultDeepClusterClustersFor
	// the set); the other methods ignore it.
	Clusters int
	// Mean and Std are the per-channel normalisation the backbone's
	// input follows (the TrainSpec's). Colorization normalises its grey
	// input with them (nil: ImageNet's); the other methods get normalised
	// views and ignore them.
	Mean, Std []float64
	// Images is the size of the training set, which DeepCluster and
	// DeepCluster v2 size their clustering by (0 means
	// Batch*StepsPerEpoch); the others ignore it.
	Images int
}

// methodNames are the registered methods: the seed's five, MAE, the
// redundancy-reduction and stop-gradient methods, DINO, then Jigsaw,
// Colorization, DeepCluster and DeepCluster v2.
var methodNames = []string{"simclr", "mocov2", "mocov3", "byol", "swav", "mae", "barlow", "vicreg", "simsiam", "dino", "jigsaw", "colorization", "deepcluster", "deepclusterv2"}

// MethodNames lists the methods New builds.
func MethodNames() []string { return append([]string(nil), methodNames...) }

// New builds the named method around backbone with its published recipe
// (or the CIFAR one, per run.Recipe) scaled to run, with run's learning
// rate and queue length when given. MAE needs a *zoo.ViT backbone.
func New(name string, backbone Encoder, run Run, rng *rand.Rand) (Method, error) {
	if run.Batch < 2 || run.StepsPerEpoch < 1 || run.Epochs < 1 {
		return nil, fmt.Errorf("ssl: run of %d epochs x %d steps at batch %d: need batch >= 2 and at least one step",
			run.Epochs, run.StepsPerEpoch, run.Batch)
	}
	if !slices.Contains(Recipes, run.Recipe) && run.Recipe != "" {
		return nil, fmt.Errorf("ssl: unknown recipe %q (known: %s)", run.Recipe, strings.Join(Recipes, ", "))
	}
	if run.LR < 0 || math.IsNaN(run.LR) || math.IsInf(run.LR, 0) {
		return nil, fmt.Errorf("ssl: learning rate %g must be a positive number (or 0 for the recipe's)", run.LR)
	}
	b, s, e := run.Batch, run.StepsPerEpoch, run.Epochs
	cifar := run.Recipe == RecipeCIFAR
	setLR := func(oc *OptimConfig) {
		if run.LR > 0 {
			// Keep the recipe's ratio of final to peak rate.
			if oc.LR > 0 {
				oc.FinalLR *= run.LR / oc.LR
			}
			oc.LR = run.LR
		}
	}
	switch name {
	case "simclr":
		c := DefaultSimCLRConfig(b, s, e)
		if cifar {
			c.UseCIFARRecipe(b, s, e)
		}
		setLR(&c.Optim)
		return NewSimCLR(c, backbone, rng)
	case "mocov2":
		c := DefaultMoCoV2Config(b, s, e)
		if cifar {
			c.UseCIFARRecipe(b, s, e)
		}
		setLR(&c.Optim)
		if run.Queue > 0 {
			c.QueueSize = run.Queue
		}
		return NewMoCoV2(c, backbone, rng)
	case "mocov3":
		c := DefaultMoCoV3Config(backbone, b, s, e)
		if cifar {
			if err := c.UseCIFARRecipe(backbone, b, s, e); err != nil {
				return nil, err
			}
		}
		setLR(&c.Optim)
		return NewMoCoV3(c, backbone, rng)
	case "byol":
		c := DefaultBYOLConfig(b, s, e)
		if cifar {
			c.UseCIFARRecipe(b, s, e)
		}
		setLR(&c.Optim)
		return NewBYOL(c, backbone, rng)
	case "swav":
		c := DefaultSwAVConfig(b, s, e)
		if cifar {
			c.UseCIFARRecipe(b, s, e)
		}
		setLR(&c.Optim)
		return NewSwAV(c, backbone, rng)
	case "barlow":
		c := DefaultBarlowConfig(b, s, e)
		if cifar {
			c.UseCIFARRecipe(b, s, e)
		}
		setLR(&c.Optim)
		return NewBarlow(c, backbone, rng)
	case "vicreg":
		c := DefaultVICRegConfig(b, s, e)
		if cifar {
			c.UseCIFARRecipe(b, s, e)
		}
		setLR(&c.Optim)
		return NewVICReg(c, backbone, rng)
	case "simsiam":
		c := DefaultSimSiamConfig(b, s, e)
		if cifar {
			c.UseCIFARRecipe(b, s, e)
		}
		setLR(&c.Optim)
		return NewSimSiam(c, backbone, rng)
	case "dino":
		c := DefaultDINOConfig(backbone, b, s, e)
		if cifar {
			if err := c.UseCIFARRecipe(backbone, b, s, e); err != nil {
				return nil, err
			}
		}
		setLR(&c.Optim)
		return NewDINO(c, backbone, rng)
	case "jigsaw":
		if cifar {
			return nil, fmt.Errorf("jigsaw: solo-learn has no Jigsaw config, so there is no %s recipe; Jigsaw has the %s recipe only", RecipeCIFAR, RecipePaper)
		}
		c := DefaultJigsawConfig(cmp.Or(run.Size, 32), b, s, e)
		c.Permutations = cmp.Or(run.Permutations, DefaultJigsawPermutations)
		if rng == nil {
			rng = rand.New(rand.NewPCG(0, 0))
		}
		c.Seed = rng.Uint64()
		setLR(&c.Optim)
		return NewJigsaw(c, backbone, rng)
	case "colorization":
		if cifar {
			return nil, fmt.Errorf("colorization: solo-learn has no Colorization config, so there is no %s recipe; Colorization has the %s recipe only", RecipeCIFAR, RecipePaper)
		}
		c := DefaultColorizationConfig(b, s, e)
		if run.Mean != nil || run.Std != nil {
			c.Mean, c.Std = run.Mean, run.Std
		}
		setLR(&c.Optim)
		return NewColorization(c, backbone, rng)
	case "deepcluster":
		if cifar {
			return nil, fmt.Errorf("deepcluster: solo-learn's DeepCluster V2 is another method (deepclusterv2 has its %s recipe); DeepCluster has the %s recipe only", RecipeCIFAR, RecipePaper)
		}
		c := DefaultDeepClusterConfig(cmp.Or(run.Images, b*s), b)
		c.Clusters = cmp.Or(run.Clusters, c.Clusters)
		if rng == nil {
			rng = rand.New(rand.NewPCG(0, 0))
		}
		c.Seed = rng.Uint64()
		setLR(&c.Optim)
		return NewDeepCluster(c, backbone, rng)
	case "deepclusterv2":
		c := DefaultDeepClusterV2Config(cmp.Or(run.Images, b*s), b, s, e)
		if cifar {
			c.UseCIFARRecipe(b, s, e)
		}
		if run.Clusters > 0 {
			for i := range c.Prototypes {
				c.Prototypes[i] = run.Clusters
			}
		}
		if rng == nil {
			rng = rand.New(rand.NewPCG(0, 0))
		}
		c.Seed = rng.Uint64()
		setLR(&c.Optim)
		return NewDeepClusterV2(c, backbone, rng)
	case "mae":
		if cifar {
			return nil, fmt.Errorf("mae: the %s recipe covers the contrastive and clustering methods; MAE has the %s recipe only", RecipeCIFAR, RecipePaper)
		}
		vit, ok := backbone.(*zoo.ViT)
		if !ok {
			return nil, fmt.Errorf("mae needs a ViT backbone (vit-tiny, vit-small, ...), not %T", backbone)
		}
		c := DefaultMAEConfig(vit, b, s, e)
		setLR(&c.Optim)
		return NewMAE(c, vit, rng)
	}
	return nil, fmt.Errorf("ssl: unknown method %q (known: %s)", name, strings.Join(methodNames, ", "))
}
