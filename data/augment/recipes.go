package augment

// The published view recipes, as torchvision pipelines. Each returns one
// Transform per view; the loader runs view v of every sample through
// views[v]. Normalization is appended when norm is non-nil. Pipelines act on
// grey images too: saturation and hue are then no-ops, as with PIL "L" images.

// Dataset statistics commonly used for Normalize.
var (
	ImageNetNorm     = &Normalization{Mean: []float64{0.485, 0.456, 0.406}, Std: []float64{0.229, 0.224, 0.225}}
	CIFAR10Norm      = &Normalization{Mean: []float64{0.4914, 0.4822, 0.4465}, Std: []float64{0.2470, 0.2435, 0.2616}}
	FashionMNISTNorm = &Normalization{Mean: []float64{0.2860}, Std: []float64{0.3530}}
	MNISTNorm        = &Normalization{Mean: []float64{0.1307}, Std: []float64{0.3081}}
)

func withNorm(c Compose, norm *Normalization) Compose {
	if norm != nil {
		c = append(c, *norm)
	}
	return c
}

// SimCLR is the SimCLR view pipeline (Chen et al. 2020, appendix A):
// RandomResizedCrop(size, scale (0.08,1)), flip 0.5, ColorJitter(0.8s, 0.8s,
// 0.8s, 0.2s) with p 0.8, grayscale 0.2 and, when blur is set, a Gaussian
// blur with p 0.5, kernel 10% of size and sigma (0.1, 2). The paper uses
// s = 1 with blur on ImageNet and s = 0.5 without blur on CIFAR-10.
func SimCLR(size int, s float64, blur bool, norm *Normalization) []Transform {
	c := Compose{
		NewRandomResizedCrop(size),
		RandomHorizontalFlip{P: 0.5},
		RandomApply{P: 0.8, T: NewColorJitter(0.8*s, 0.8*s, 0.8*s, 0.2*s)},
		RandomGrayscale{P: 0.2},
	}
	if blur {
		c = append(c, RandomApply{P: 0.5, T: RandomGaussianBlur{Kernel: BlurKernelFor(size), Sigma: [2]float64{0.1, 2}}})
	}
	c = withNorm(c, norm)
	return []Transform{c, c}
}

// MoCoV2 is MoCo v2's "aug_plus" pipeline: RandomResizedCrop(scale (0.2,1)),
// ColorJitter(0.4, 0.4, 0.4, 0.1) with p 0.8, grayscale 0.2, blur p 0.5
// (sigma (0.1, 2)), flip 0.5; two views.
func MoCoV2(size int, norm *Normalization) []Transform {
	c := withNorm(Compose{
		RandomResizedCrop{H: size, W: size, Scale: [2]float64{0.2, 1}},
		RandomApply{P: 0.8, T: NewColorJitter(0.4, 0.4, 0.4, 0.1)},
		RandomGrayscale{P: 0.2},
		RandomApply{P: 0.5, T: RandomGaussianBlur{Kernel: BlurKernelFor(size), Sigma: [2]float64{0.1, 2}}},
		RandomHorizontalFlip{P: 0.5},
	}, norm)
	return []Transform{c, c}
}

// BYOL is BYOL's asymmetric pair (Grill et al. 2020, table 6), also used by
// MoCo v3: RandomResizedCrop(scale (0.08,1)), flip 0.5, ColorJitter(0.4,
// 0.4, 0.2, 0.1) with p 0.8, grayscale 0.2, then blur with p 1.0 / 0.1 and
// solarize (threshold 0.5) with p 0 / 0.2 for the first / second view.
func BYOL(size int, norm *Normalization) []Transform {
	view := func(blurP, solarP float64) Compose {
		c := Compose{
			NewRandomResizedCrop(size),
			RandomHorizontalFlip{P: 0.5},
			RandomApply{P: 0.8, T: NewColorJitter(0.4, 0.4, 0.2, 0.1)},
			RandomGrayscale{P: 0.2},
			RandomApply{P: blurP, T: RandomGaussianBlur{Kernel: BlurKernelFor(size), Sigma: [2]float64{0.1, 2}}},
		}
		if solarP > 0 {
			c = append(c, RandomSolarize{Threshold: 0.5, P: solarP})
		}
		return withNorm(c, norm)
	}
	return []Transform{view(1.0, 0), view(0.1, 0.2)}
}

// MultiCrop builds SwAV-style views: nGlobal copies of global then nLocal of
// local, in that order (the loss indexes the global crops first).
func MultiCrop(global Transform, nGlobal int, local Transform, nLocal int) []Transform {
	views := make([]Transform, 0, nGlobal+nLocal)
	for range nGlobal {
		views = append(views, global)
	}
	for range nLocal {
		views = append(views, local)
	}
	return views
}

// SwAV is SwAV's multi-crop (Caron et al. 2020): nGlobal crops of
// globalSize with scale (0.14, 1) and nLocal crops of localSize with scale
// (0.05, 0.14), each followed by flip 0.5, ColorJitter(0.8, 0.8, 0.8, 0.2)
// with p 0.8, grayscale 0.2 and blur p 0.5. The paper's setting is 2x224 +
// 6x96.
func SwAV(globalSize, nGlobal, localSize, nLocal int, norm *Normalization) []Transform {
	tail := func(size int) Compose {
		return Compose{
			RandomHorizontalFlip{P: 0.5},
			RandomApply{P: 0.8, T: NewColorJitter(0.8, 0.8, 0.8, 0.2)},
			RandomGrayscale{P: 0.2},
			RandomApply{P: 0.5, T: RandomGaussianBlur{Kernel: BlurKernelFor(size), Sigma: [2]float64{0.1, 2}}},
		}
	}
	g := withNorm(append(Compose{RandomResizedCrop{H: globalSize, W: globalSize, Scale: [2]float64{0.14, 1}}}, tail(globalSize)...), norm)
	l := withNorm(append(Compose{RandomResizedCrop{H: localSize, W: localSize, Scale: [2]float64{0.05, 0.14}}}, tail(localSize)...), norm)
	return MultiCrop(g, nGlobal, l, nLocal)
}

// Eval is the deterministic pipeline for evaluation and feature extraction:
// the shorter side resized to size (bilinear, antialiased), the centred
// size x size square (CenterResize), then normalisation.
func Eval(size int, norm *Normalization) Transform {
	return withNorm(Compose{CenterResize{Size: size}}, norm)
}
