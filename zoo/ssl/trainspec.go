package ssl

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/data/augment"
	"github.com/sslzoo/sslzoo/data/preprocess"
	"github.com/sslzoo/sslzoo/zoo"
)

// TrainSpec is everything that determines a Train run's model and
// schedule. It is stored as JSON with every checkpoint (a resume must match
// it byte for byte) and in the final weights, where evaluation and export
// rebuild the backbone from it. Its JSON field names, order and omissions
// are a file format: checkpoints of older runs must keep resuming.
//
// 28x28 single-channel data (MNIST, Fashion-MNIST) stays one channel (the
// backbone's first conv takes 1 input channel) and is brought to Size x
// Size: the training crops resample to that size, and evaluation resizes
// the whole image to it (bilinear, antialiased, as torchvision's Resize).
// Folder images are converted to RGB.
type TrainSpec struct {
	Method     string    `json:"method"`
	Data       string    `json:"data"`
	Arch       string    `json:"arch"`
	Width      float64   `json:"width"`
	InChannels int       `json:"in_channels"`
	Size       int       `json:"size"`
	Mean       []float64 `json:"mean"`
	Std        []float64 `json:"std"`
	Epochs     int       `json:"epochs"`
	Batch      int       `json:"batch"`
	Seed       uint64    `json:"seed"`
	LR         float64   `json:"lr,omitempty"`          // 0: the recipe's, scaled to the batch
	Recipe     string    `json:"recipe,omitempty"`      // "" is RecipePaper
	Limit      int       `json:"limit,omitempty"`       // train on the first Limit images
	Queue      int       `json:"queue,omitempty"`       // MoCo v2 queue length
	LocalCrops int       `json:"local_crops,omitempty"` // SwAV, DINO and DeepCluster v2 local crops
	LocalSize  int       `json:"local_size,omitempty"`  // their local crop size
	// Pool is a ViT's embedding: "" or PoolCLS (the class token after the
	// final norm) or PoolMean (the average of the normalised patch
	// tokens). MAE's loss does not look at it, so it only decides what the
	// monitor, eval, embed and export see; the weights are the same.
	Pool string `json:"pool,omitempty"`
	// Permutations is Jigsaw's number of puzzle classes (its permutation
	// set itself is saved with the checkpoint's method state).
	Permutations int `json:"permutations,omitempty"`
	// Clusters is the --clusters DeepCluster and DeepCluster v2 ran with
	// (0: the default for the set, which the method config records).
	Clusters int `json:"clusters,omitempty"`
}

// ViT embedding poolings for TrainSpec.Pool.
const (
	PoolCLS  = "cls"
	PoolMean = "mean"
)

// vitPatch is the patch size of ViTs trained at small image sizes, as the
// CIFAR ViT recipes use.
const vitPatch = 4

// ArchSpec is the exact architecture the spec trains: the registry entry
// with Width and InChannels applied to a ResNet, and the image size, 4x4
// patches and InChannels to a ViT. Its ConfigJSON is what Train records
// under zoo.ArchConfigKey.
func (s TrainSpec) ArchSpec() (zoo.Spec, error) {
	a, err := zoo.Arch(s.Arch)
	if err != nil {
		return zoo.Spec{}, err
	}
	switch a.Family {
	case "resnet":
		a.ResNet.Width = s.Width
		a.ResNet.InChannels = s.InChannels
		if s.Pool != "" {
			return zoo.Spec{}, fmt.Errorf("pooling %q applies to ViTs; %s always averages its last feature map", s.Pool, s.Arch)
		}
	case "vit":
		a.ViT.ImageSize, a.ViT.PatchSize, a.ViT.InChannels = s.Size, vitPatch, s.InChannels
		if s.Size%vitPatch != 0 {
			return zoo.Spec{}, fmt.Errorf("%s needs a size divisible by its patch size %d, got %d", s.Arch, vitPatch, s.Size)
		}
		switch s.Pool {
		case "", PoolCLS:
		case PoolMean:
			a.ViT.Pool = "norm-mean" // keeps the final norm over the tokens, which MAE needs
		default:
			return zoo.Spec{}, fmt.Errorf("pooling %q: want %s or %s", s.Pool, PoolCLS, PoolMean)
		}
	default:
		return zoo.Spec{}, fmt.Errorf("architecture %q is a %s model; SSL training takes image backbones (resnet*, vit-*)", s.Arch, a.Family)
	}
	return a, nil
}

// NewBackbone constructs the encoder the spec names, freshly initialised
// from rng.
func (s TrainSpec) NewBackbone(rng *rand.Rand) (Encoder, error) {
	a, err := s.ArchSpec()
	if err != nil {
		return nil, err
	}
	b, err := a.Build(rng)
	if err != nil {
		return nil, err
	}
	enc, ok := b.(Encoder)
	if !ok {
		return nil, fmt.Errorf("architecture %q cannot serve as an encoder", s.Arch)
	}
	return enc, nil
}

// Views are the method's augmentation pipelines at the spec's size, one
// per view: SimCLR uses the paper's CIFAR-10 setting (colour strength 0.5,
// no blur); MoCo v2 and SimSiam MoCo v2's aug_plus; MoCo v3, BYOL, Barlow
// Twins and VICReg BYOL's asymmetric pair; SwAV two global crops plus
// LocalCrops local crops; DINO SwAV's multi-crop pipeline (its crop scales,
// 0.14-1 global and 0.05-0.14 local, are those of DINO's ResNet-50 run;
// its ViT runs take 0.4-1 and 0.05-0.4 and solarise one global crop); MAE
// one crop; Jigsaw one square crop, which Step cuts into its puzzle;
// Colorization one square crop, mirrored at random and not normalised;
// DeepCluster one random crop and flip (it clusters the set on
// EvalTransform); DeepCluster v2 SwAV's multi-crop pipeline, as its
// reference script (global crops 0.14-1, local 0.05-0.14). toRGB
// converts every image to RGB first (folder images).
func (s TrainSpec) Views(toRGB bool) ([]augment.Transform, error) {
	norm := &augment.Normalization{Mean: s.Mean, Std: s.Std}
	var views []augment.Transform
	switch s.Method {
	case "simclr":
		views = augment.SimCLR(s.Size, 0.5, false, norm)
	case "mocov2", "simsiam":
		views = augment.MoCoV2(s.Size, norm)
	case "mocov3", "byol", "barlow", "vicreg":
		views = augment.BYOL(s.Size, norm)
	case "swav", "dino", "deepclusterv2":
		views = augment.SwAV(s.Size, 2, s.LocalSize, s.LocalCrops, norm)
	case "jigsaw":
		// The paper's random 225-px square crop of a 256-px image, about
		// three quarters of its area. Step normalises each tile channel
		// by its own statistics, which cancels this normalisation.
		views = []augment.Transform{augment.Compose{
			augment.RandomResizedCrop{H: s.Size, W: s.Size, Scale: [2]float64{0.75, 1}, Ratio: [2]float64{1, 1}},
			*norm,
		}}
	case "colorization":
		// The reference's random square crops (176 of 256 px, 47% of the
		// area) and mirroring, as a square crop of 47% to 100% of the
		// area resized to Size; no colour augmentation and no
		// normalisation: Step reads the true colours in [0, 1] and
		// normalises the grey input itself.
		views = []augment.Transform{augment.Compose{
			augment.RandomResizedCrop{H: s.Size, W: s.Size, Scale: [2]float64{0.47, 1}, Ratio: [2]float64{1, 1}},
			augment.RandomHorizontalFlip{P: 0.5},
		}}
	case "deepcluster":
		// The reference's RandomResizedCrop(224) with torchvision's
		// default scale (0.08, 1) and ratio, a horizontal flip, then
		// normalisation (it also runs a fixed Sobel filter on the grey
		// image first, which sslzoo leaves out).
		views = []augment.Transform{augment.Compose{
			augment.NewRandomResizedCrop(s.Size),
			augment.RandomHorizontalFlip{P: 0.5},
			*norm,
		}}
	case "mae":
		// RandomResizedCrop with scale (0.2, 1) and a horizontal flip
		// (main_pretrain.py; sslzoo resizes bilinearly where the reference
		// uses bicubic), then normalisation.
		views = []augment.Transform{augment.Compose{
			augment.RandomResizedCrop{H: s.Size, W: s.Size, Scale: [2]float64{0.2, 1}},
			augment.RandomHorizontalFlip{P: 0.5},
			*norm,
		}}
	default:
		return nil, fmt.Errorf("unknown method %q (known: %s)", s.Method, strings.Join(methodNames, ", "))
	}
	if toRGB {
		for i, v := range views {
			views[i] = augment.Compose{augment.ToRGB{}, v}
		}
	}
	return views, nil
}

// EvalTransform resizes an image's shorter side to the training size,
// takes the centred square and normalises (the geometry Preprocess
// records), for evaluation and the kNN monitor.
func (s TrainSpec) EvalTransform(toRGB bool) augment.Transform {
	t := augment.Eval(s.Size, &augment.Normalization{Mean: s.Mean, Std: s.Std})
	if toRGB {
		return augment.Compose{augment.ToRGB{}, t}
	}
	return t
}

// Preprocess is the preprocessing recorded with the final weights
// (MetaPreprocess), which another stack follows to feed the exported
// backbone.
func (s TrainSpec) Preprocess() preprocess.Spec {
	ch := preprocess.RGB
	if s.InChannels == 1 {
		ch = preprocess.L
	}
	return preprocess.Spec{Layout: "NCHW", Channels: ch, Size: [2]int{s.Size, s.Size}, ResizeSize: s.Size,
		Resize: "bilinear", Crop: "center", Scale: 1.0 / 255, Mean: s.Mean, Std: s.Std}
}

// NormFor is the per-channel normalisation of a dataset spec ("mnist",
// "cifar10:DIR", ...); ImageNet's for anything else.
func NormFor(dataSpec string) *augment.Normalization {
	name, _, _ := strings.Cut(dataSpec, ":")
	switch name {
	case "fashion-mnist":
		return augment.FashionMNISTNorm
	case "mnist":
		return augment.MNISTNorm
	case "cifar10":
		return augment.CIFAR10Norm
	case "cifar100", "cifar100-coarse":
		return &augment.Normalization{Mean: []float64{0.5071, 0.4865, 0.4409}, Std: []float64{0.2673, 0.2564, 0.2762}}
	}
	return augment.ImageNetNorm
}

// ImageChannels is the number of channels the network sees for a dataset:
// in-memory sets keep theirs; other sets (image folders) are converted to
// RGB, which toRGB reports.
func ImageChannels(ds data.Dataset) (c int, toRGB bool) {
	switch d := ds.(type) {
	case *data.Images:
		return d.C, false
	case *data.Subset:
		return ImageChannels(d.Base)
	}
	return 3, true
}

// DefaultMoCoQueue is the MoCo v2 queue length for a training set of n
// images: the recipe's 65536 needs a set many times larger than it (else
// the queue holds stale keys of the very images in the batch), so smaller
// sets get 4096, the length lightly's CIFAR-10 benchmarks use.
func DefaultMoCoQueue(n, batch int) int {
	if n >= 4*65536 {
		return 65536
	}
	return max(batch, min(4096, n/2))
}
