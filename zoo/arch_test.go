package zoo

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
)

// TestArchShapes builds every registry entry at full size and compares its
// state_dict names and shapes with the PyTorch models in
// testdata/shapes.json (torchvision's ResNets less fc; timm-layout ViTs and
// Hugging Face-layout BERTs from scripts/gen_parity.py).
func TestArchShapes(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "shapes.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]map[string][]int
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("shapes.json: %v", err)
	}
	names := ArchNames()
	if got := mapKeys(want); strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("registry %v, shapes.json %v", names, got)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			big := name == "vit-base" || name == "bert-base"
			if big && testing.Short() {
				t.Skip("allocates ~0.4 GB; skipped with -short")
			}
			spec, err := Arch(name)
			if err != nil {
				t.Fatal(err)
			}
			m, err := spec.Build(rand.New(rand.NewPCG(7, 7)))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]int{}
			s := nn.StateOf(m)
			for _, p := range s.Params {
				got[p.Name] = p.Var.Value.Shape
			}
			for _, b := range s.Buffers {
				if b.Count != nil {
					got[b.Name] = []int{}
				} else {
					got[b.Name] = b.T.Shape
				}
			}
			for k, w := range want[name] {
				g, ok := got[k]
				switch {
				case !ok:
					t.Errorf("missing %s %v", k, w)
				case !tensor.SameShape(g, w):
					t.Errorf("%s: shape %v, PyTorch %v", k, g, w)
				}
			}
			for k := range got {
				if _, ok := want[name][k]; !ok {
					t.Errorf("unexpected %s %v", k, got[k])
				}
			}
		})
	}
}

func mapKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestArchUnknown(t *testing.T) {
	_, err := Arch("resnet19")
	if err == nil {
		t.Fatal("no error for an unknown architecture")
	}
	for _, n := range []string{"resnet18-cifar", "vit-small", "bert-base"} {
		if !strings.Contains(err.Error(), n) {
			t.Errorf("error %q does not list %s", err, n)
		}
	}
	if s, err := Arch("bert-mini"); err != nil || s.Name != "bert-mini" || s.BERT.Hidden != 256 || s.BERT.Layers != 4 {
		t.Errorf("bert-mini: %+v, %v", s, err)
	}
	// Google's BERT-Tiny: 2 layers, hidden 128, 2 heads, intermediate 512.
	if s, err := Arch("bert-tiny"); err != nil || s.BERT.Hidden != 128 || s.BERT.Layers != 2 || s.BERT.Heads != 2 || s.BERT.Intermediate != 512 {
		t.Errorf("bert-tiny: %+v, %v", s, err)
	}
}

func TestConfigErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	resnets := []ResNetConfig{{Depth: 20}, {Depth: 18, Stem: "tiny"}, {Depth: 18, Width: -1}, {Depth: 50, NumClasses: -1}}
	for _, c := range resnets {
		if _, err := NewResNet(c, rng); err == nil {
			t.Errorf("NewResNet(%+v) accepted", c)
		}
	}
	vits := []ViTConfig{
		{Dim: 30, Depth: 1, Heads: 4},
		{Dim: 32, Depth: 1, Heads: 4, ImageSize: 30, PatchSize: 16},
		{Dim: 32, Depth: 1, Heads: 4, Pool: "max"},
	}
	for _, c := range vits {
		if _, err := NewViT(c, rng); err == nil {
			t.Errorf("NewViT(%+v) accepted", c)
		}
	}
	berts := []BERTConfig{
		{Hidden: 30, Layers: 1, Heads: 4},
		{Hidden: 32, Layers: 1, Heads: 4, PadTokenID: 30522},
		{Hidden: 32, Layers: 1, Heads: 4, HiddenDropout: 1},
	}
	for _, c := range berts {
		if _, err := NewBERT(c, rng); err == nil {
			t.Errorf("NewBERT(%+v) accepted", c)
		}
	}
}

// TestForwardShapeErrors checks that bad inputs come back as errors through
// autograd.Catch rather than crashing.
func TestForwardShapeErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	r, err := NewResNet(ResNetConfig{Depth: 18, Stem: "cifar", Width: 0.0625, InChannels: 1}, rng)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewViT(ViTConfig{ImageSize: 8, PatchSize: 4, Dim: 8, Depth: 1, Heads: 2}, rng)
	if err != nil {
		t.Fatal(err)
	}
	bm, err := NewBERT(BERTConfig{VocabSize: 10, Hidden: 8, Layers: 1, Heads: 2, MaxPositions: 4}, rng)
	if err != nil {
		t.Fatal(err)
	}
	tp := autograd.NewTape()
	bad := map[string]func(){
		"resnet channels": func() { r.Forward(tp, autograd.Const(tensor.New(1, 3, 8, 8))) },
		"resnet rank":     func() { r.Forward(tp, autograd.Const(tensor.New(1, 8, 8))) },
		"vit patch":       func() { v.Forward(tp, autograd.Const(tensor.New(1, 3, 10, 8))) },
		"bert too long":   func() { bm.Forward(tp, BERTInput{Batch: 1, Seq: 5, IDs: make([]int, 5)}) },
		"bert ids":        func() { bm.Forward(tp, BERTInput{Batch: 2, Seq: 3, IDs: make([]int, 5)}) },
		"bert vocab":      func() { bm.Forward(tp, BERTInput{Batch: 1, Seq: 2, IDs: []int{1, 10}}) },
		"bert type":       func() { bm.Forward(tp, BERTInput{Batch: 1, Seq: 2, IDs: []int{1, 2}, TokenTypes: []int{0, 2}}) },
		"bert no head":    func() { bm.MLMLogits(tp, autograd.Const(tensor.New(1, 8))) },
	}
	for name, fn := range bad {
		if err := autograd.Catch(fn); err == nil {
			t.Errorf("%s: no error", name)
		}
		tp.Reset()
	}
}
