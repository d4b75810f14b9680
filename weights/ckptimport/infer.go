package ckptimport

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/sslzoo/sslzoo/zoo"
)

// detectFamily tells a torchvision ResNet from a timm ViT by their names.
func detectFamily(t map[string]ref) (string, error) {
	has := func(n string) bool { _, ok := t[n]; return ok }
	switch {
	case has("conv1.weight") && has("layer1.0.conv1.weight"):
		return "resnet", nil
	case has("patch_embed.proj.weight") && has("cls_token") && has("pos_embed"):
		return "vit", nil
	case has("patch_embed.proj.0.weight"):
		return "", fmt.Errorf("a ViT with a convolutional stem (patch_embed.proj.0.*, e.g. MoCo v3's vit_conv_*): sslzoo's ViT has a single patch projection")
	}
	names := sortedKeys(t)
	if len(names) > 6 {
		names = append(names[:6], "...")
	}
	return "", fmt.Errorf("the backbone tensors (%s) are neither a torchvision ResNet (conv1, layer1.0...) nor a timm ViT (patch_embed.proj, cls_token, pos_embed, blocks...)", strings.Join(names, ", "))
}

// shapeOf returns a tensor's shape when it exists with rank n.
func shapeOf(t map[string]ref, name string, rank int) ([]int, error) {
	r, ok := t[name]
	if !ok {
		return nil, fmt.Errorf("no tensor %s", name)
	}
	if len(r.shape) != rank {
		return nil, fmt.Errorf("tensor %s has shape %v, want rank %d", name, r.shape, rank)
	}
	return r.shape, nil
}

// countIndexed counts the consecutive numbered modules prefix0., prefix1., ...
func countIndexed(t map[string]ref, prefix string) (int, error) {
	seen := map[int]bool{}
	for n := range t {
		rest, ok := strings.CutPrefix(n, prefix)
		if !ok {
			continue
		}
		i, err := strconv.Atoi(rest[:max(0, strings.IndexByte(rest, '.'))])
		if err != nil || i < 0 {
			continue
		}
		seen[i] = true
	}
	for i := range len(seen) {
		if !seen[i] {
			return 0, fmt.Errorf("%s%d is missing while %d %s* modules exist", prefix, i, len(seen), prefix)
		}
	}
	return len(seen), nil
}

// inferResNet reads depth, width, stem and input channels off the shapes.
func inferResNet(t map[string]ref, cifarPad int) (zoo.ResNetConfig, []string, error) {
	var notes []string
	w, err := shapeOf(t, "conv1.weight", 4)
	if err != nil {
		return zoo.ResNetConfig{}, nil, err
	}
	c := zoo.ResNetConfig{InChannels: w[1], Width: float64(w[0]) / 64}
	switch {
	case w[2] == 7 && w[3] == 7:
		c.Stem = "imagenet"
	case w[2] == 3 && w[3] == 3:
		c.Stem = "cifar"
		if cifarPad > 0 {
			c.StemPadding = cifarPad
			notes = append(notes, fmt.Sprintf("3x3 conv1: the project's CIFAR stem, padding %d, no max pool", cifarPad))
		} else {
			notes = append(notes, "3x3 conv1: taken as the usual CIFAR stem (padding 1, no max pool)")
		}
	default:
		return c, nil, fmt.Errorf("conv1.weight has shape %v: a %dx%d stem is neither torchvision's 7x7 nor the CIFAR 3x3", w, w[2], w[3])
	}
	var counts [4]int
	for i := range counts {
		if counts[i], err = countIndexed(t, fmt.Sprintf("layer%d.", i+1)); err != nil {
			return c, nil, err
		}
	}
	_, bottleneck := t["layer1.0.conv3.weight"]
	switch {
	case !bottleneck && counts == [4]int{2, 2, 2, 2}:
		c.Depth = 18
	case !bottleneck && counts == [4]int{3, 4, 6, 3}:
		c.Depth = 34
	case bottleneck && counts == [4]int{3, 4, 6, 3}:
		c.Depth = 50
	default:
		kind := "basic"
		if bottleneck {
			kind = "bottleneck"
		}
		return c, nil, fmt.Errorf("a ResNet of %s blocks %v (e.g. ResNet-101 has bottleneck [3 4 23 3]): sslzoo builds ResNet-18, 34 and 50", kind, counts)
	}
	return c, notes, nil
}

// inferViT reads width, depth, patch, image size and MLP ratio off the
// shapes; the heads come from the format (see headsRule).
func inferViT(t map[string]ref) (zoo.ViTConfig, error) {
	pe, err := shapeOf(t, "patch_embed.proj.weight", 4)
	if err != nil {
		return zoo.ViTConfig{}, err
	}
	c := zoo.ViTConfig{Dim: pe[0], InChannels: pe[1], PatchSize: pe[2], Eps: 1e-6, Pool: "cls"}
	if pe[2] != pe[3] {
		return c, fmt.Errorf("patch_embed.proj.weight has shape %v: non-square patches", pe)
	}
	pos, err := shapeOf(t, "pos_embed", 3)
	if err != nil {
		return c, err
	}
	g := int(math.Round(math.Sqrt(float64(pos[1] - 1))))
	if pos[1] < 2 || g*g != pos[1]-1 {
		return c, fmt.Errorf("pos_embed has shape %v: want 1 class token and a square grid of patches", pos)
	}
	c.ImageSize = g * c.PatchSize
	if c.Depth, err = countIndexed(t, "blocks."); err != nil {
		return c, err
	}
	if c.Depth > 0 {
		fc1, err := shapeOf(t, "blocks.0.mlp.fc1.weight", 2)
		if err != nil {
			return c, err
		}
		c.MLPRatio = float64(fc1[0]) / float64(c.Dim)
		if int(float64(c.Dim)*c.MLPRatio) != fc1[0] {
			return c, fmt.Errorf("blocks.0.mlp.fc1.weight has shape %v: an MLP width sslzoo cannot express as a ratio of %d", fc1, c.Dim)
		}
		if _, ok := t["blocks.0.attn.qkv.bias"]; !ok {
			return c, fmt.Errorf("blocks.0.attn.qkv has no bias: sslzoo's ViT uses qkv_bias=True, as DINO, MAE, MoCo v3 and timm do")
		}
	}
	_, norm := t["norm.weight"]
	_, fcNorm := t["fc_norm.weight"]
	if fcNorm && !norm {
		c.Pool = "mean" // timm/MAE global_pool="avg": fc_norm after the mean of the patch tokens
	}
	return c, nil
}

// specName names a spec: the registry's name when the configuration is a
// registered one, else a name spelling out what differs.
func specName(s zoo.Spec) string {
	for _, n := range zoo.ArchNames() {
		a, err := zoo.Arch(n)
		if err != nil || a.Family != s.Family {
			continue
		}
		a.Name, s.Name = "", ""
		if a.ConfigJSON() == s.ConfigJSON() {
			return n
		}
	}
	switch s.Family {
	case "resnet":
		c := s.ResNet
		n := fmt.Sprintf("resnet%d", c.Depth)
		if c.Stem == "cifar" {
			n += "-cifar"
		}
		if c.Width != 1 {
			n += "-w" + strconv.FormatFloat(c.Width, 'g', -1, 64)
		}
		if c.StemPadding != 0 {
			n += fmt.Sprintf("-pad%d", c.StemPadding)
		}
		if c.InChannels != 3 {
			n += fmt.Sprintf("-in%d", c.InChannels)
		}
		return n
	case "vit":
		c := s.ViT
		n := fmt.Sprintf("vit-d%d-l%d-h%d-p%d-s%d", c.Dim, c.Depth, c.Heads, c.PatchSize, c.ImageSize)
		if c.MLPRatio != 4 {
			n += "-mlp" + strconv.FormatFloat(c.MLPRatio, 'g', -1, 64)
		}
		if c.Pool == "mean" {
			n += "-mean"
		}
		if c.InChannels != 3 {
			n += fmt.Sprintf("-in%d", c.InChannels)
		}
		return n
	case "bert":
		c := s.BERT
		return fmt.Sprintf("bert-L%d-H%d-A%d-v%d", c.Layers, c.Hidden, c.Heads, c.VocabSize)
	}
	return s.Family
}

func sortedInts(m map[int]int) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

// describeSpec is a short account of a configuration for the summary.
func describeSpec(s zoo.Spec) string {
	switch s.Family {
	case "resnet":
		c := s.ResNet
		stem := c.Stem + " stem"
		if c.StemPadding != 0 {
			stem += fmt.Sprintf(" (conv1 padding %d)", c.StemPadding)
		}
		return fmt.Sprintf("ResNet-%d, %s, width %g, %d input channels", c.Depth, stem, c.Width, c.InChannels)
	case "vit":
		c := s.ViT
		return fmt.Sprintf("ViT dim %d, depth %d, %d heads, patch %d, image %d, MLP ratio %g, %s pooling", c.Dim, c.Depth, c.Heads, c.PatchSize, c.ImageSize, c.MLPRatio, c.Pool)
	case "bert":
		c := s.BERT
		return fmt.Sprintf("BERT %d layers, hidden %d, %d heads, vocabulary %d, %d positions", c.Layers, c.Hidden, c.Heads, c.VocabSize, c.MaxPositions)
	}
	return s.Family
}
