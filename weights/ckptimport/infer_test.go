package ckptimport

import (
	"fmt"
	"strings"
	"testing"
)

// shapes builds backbone refs with shapes only (inference reads no data).
func shapes(kv map[string][]int) map[string]ref {
	out := map[string]ref{}
	for k, s := range kv {
		out[k] = ref{shape: s}
	}
	return out
}

// vitShapes are the tensors inference looks at for a ViT of the given
// width and depth at 224 pixels, patch 16.
func vitShapes(dim, depth int) map[string]ref {
	kv := map[string][]int{
		"patch_embed.proj.weight": {dim, 3, 16, 16}, "cls_token": {1, 1, dim}, "pos_embed": {1, 197, dim},
		"norm.weight": {dim},
	}
	for i := range depth {
		kv[fmt.Sprintf("blocks.%d.mlp.fc1.weight", i)] = []int{4 * dim, dim}
		kv[fmt.Sprintf("blocks.%d.attn.qkv.bias", i)] = []int{3 * dim}
	}
	return shapes(kv)
}

// resnetShapes are the tensors inference looks at for a ResNet.
func resnetShapes(conv1 []int, blocks [4]int, bottleneck bool) map[string]ref {
	kv := map[string][]int{"conv1.weight": conv1}
	for s, n := range blocks {
		for j := range n {
			kv[fmt.Sprintf("layer%d.%d.conv1.weight", s+1, j)] = []int{1}
			if bottleneck {
				kv[fmt.Sprintf("layer%d.%d.conv3.weight", s+1, j)] = []int{1}
			}
		}
	}
	return shapes(kv)
}

// TestHeadsByFormat: the same ViT-S/16 shapes are 6 heads for DINO (and
// so sslzoo's vit-small), 12 for MoCo v3, whose name then says so; --arch
// vit-small under MoCo v3 takes 12 with a note; solo-learn depends on the
// method.
func TestHeadsByFormat(t *testing.T) {
	layoutOf := func(format string) *selection {
		s := map[string]*selection{
			"dino":    {heads: headsRule{source: "DINO", table: map[int]int{192: 3, 384: 6, 768: 12}}},
			"moco-v3": {heads: headsRule{source: "MoCo v3", fixed: 12}},
			"solo":    {heads: headsRule{source: "solo-learn", table: map[int]int{768: 12, 1024: 16}, ambiguous: "depends on the method"}},
		}[format]
		s.backbone, s.families = vitShapes(384, 12), []string{"vit"}
		return s
	}
	cases := []struct {
		format, arch string
		heads        int
		wantHeads    int
		wantName     string
		wantNote     string
		wantErr      string
	}{
		{"dino", "", 0, 6, "vit-small", "", ""},
		{"moco-v3", "", 0, 12, "vit-d384-l12-h12-p16-s224", "12 attention heads, as MoCo v3", ""},
		{"moco-v3", "vit-small", 0, 12, "vit-d384-l12-h12-p16-s224", "(--arch vit-small has 6)", ""},
		{"dino", "vit-small", 0, 6, "vit-small", "", ""},
		{"solo", "", 0, 0, "", "", "depends on the method"},
		{"solo", "", 6, 6, "vit-small", "", ""},
		{"solo", "vit-small", 0, 6, "vit-small", "", ""},
		{"dino", "", 7, 0, "", "", "--heads 7 does not divide the ViT width 384"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.format, c.arch, c.heads), func(t *testing.T) {
			spec, notes, err := chooseSpec("vit", layoutOf(c.format), Options{Arch: c.arch, Heads: c.heads})
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if spec.ViT.Heads != c.wantHeads || spec.Name != c.wantName {
				t.Errorf("%d heads, name %s; want %d, %s", spec.ViT.Heads, spec.Name, c.wantHeads, c.wantName)
			}
			if got := strings.Join(notes, "; "); !strings.Contains(got, c.wantNote) || (c.wantNote == "" && got != "") {
				t.Errorf("notes %q, want %q", got, c.wantNote)
			}
		})
	}
}

// TestInferResNet reads depth, width and stem, applies solo-learn's stem
// padding (also under --arch), and refuses what sslzoo does not build.
func TestInferResNet(t *testing.T) {
	sel := func(conv1 []int, blocks [4]int, bottleneck bool, pad int) *selection {
		return &selection{backbone: resnetShapes(conv1, blocks, bottleneck), families: []string{"resnet"}, cifarPad: pad}
	}
	basic, deep := [4]int{2, 2, 2, 2}, [4]int{3, 4, 6, 3}
	cases := []struct {
		name, arch string
		sel        *selection
		want       string // spec name, or error text
	}{
		{"torchvision resnet50", "", sel([]int{64, 3, 7, 7}, deep, true, 0), "resnet50"},
		{"resnet34", "", sel([]int{64, 3, 7, 7}, deep, false, 0), "resnet34"},
		{"SwAV resnet50-w2", "", sel([]int{128, 3, 7, 7}, deep, true, 0), "resnet50-w2"},
		{"CIFAR stem", "", sel([]int{64, 3, 3, 3}, basic, false, 0), "resnet18-cifar"},
		{"solo-learn CIFAR stem", "", sel([]int{64, 3, 3, 3}, basic, false, 2), "resnet18-cifar-pad2"},
		{"solo-learn under --arch", "resnet18-cifar", sel([]int{64, 3, 3, 3}, basic, false, 2), "resnet18-cifar-pad2"},
		{"grey input", "", sel([]int{32, 1, 7, 7}, basic, false, 0), "resnet18-w0.5-in1"},
		{"resnet101", "", sel([]int{64, 3, 7, 7}, [4]int{3, 4, 23, 3}, true, 0), "bottleneck blocks [3 4 23 3]"},
		{"5x5 stem", "", sel([]int{64, 3, 5, 5}, basic, false, 0), "a 5x5 stem"},
		{"gap in the blocks", "", &selection{backbone: shapes(map[string][]int{"conv1.weight": {64, 3, 7, 7}, "layer1.0.conv1.weight": {1}, "layer1.2.conv1.weight": {1}}), families: []string{"resnet"}}, "layer1.1 is missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec, _, err := chooseSpec("resnet", c.sel, Options{Arch: c.arch})
			got := spec.Name
			if err != nil {
				got = err.Error()
			}
			if !strings.Contains(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

// TestDetectFamily names what it found when it is neither family.
func TestDetectFamily(t *testing.T) {
	if _, err := detectFamily(shapes(map[string][]int{"patch_embed.proj.0.weight": {1}})); err == nil || !strings.Contains(err.Error(), "convolutional stem") {
		t.Errorf("conv stem: %v", err)
	}
	if _, err := detectFamily(shapes(map[string][]int{"features.0.weight": {1}})); err == nil || !strings.Contains(err.Error(), "features.0.weight") {
		t.Errorf("other: %v", err)
	}
}
