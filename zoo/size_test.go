package zoo

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
)

// TestValuesMatchPyTorch: Values counts, without building anything, what
// every registered architecture's PyTorch state dict holds (shapes.json,
// less BatchNorm's scalar step counters).
func TestValuesMatchPyTorch(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "shapes.json"))
	if err != nil {
		t.Fatal(err)
	}
	var shapes map[string]map[string][]int
	if err := json.Unmarshal(b, &shapes); err != nil {
		t.Fatal(err)
	}
	for _, name := range ArchNames() {
		want := 0
		for k, s := range shapes[name] {
			if !strings.HasSuffix(k, "num_batches_tracked") {
				want += tensor.Numel(s)
			}
		}
		spec, _ := Arch(name)
		if got, err := spec.Values(); err != nil || got != float64(want) {
			t.Errorf("%s: Values %v (%v), PyTorch's state dict %d", name, got, err, want)
		}
	}
}

// TestValuesMatchBuild: the count follows the configuration where the
// registry's entries do not reach (narrow and wide widths, classifier
// heads, mean pooling, the pooler and the MLM head).
func TestValuesMatchBuild(t *testing.T) {
	for _, s := range []Spec{
		{Family: "resnet", ResNet: ResNetConfig{Depth: 18, Stem: "cifar", Width: 0.0625, InChannels: 1, NumClasses: 10}},
		{Family: "resnet", ResNet: ResNetConfig{Depth: 50, Width: 0.3, InChannels: 2}},
		{Family: "resnet", ResNet: ResNetConfig{Depth: 34, Width: 0.13}},
		{Family: "vit", ViT: ViTConfig{ImageSize: 32, PatchSize: 8, Dim: 24, Depth: 2, Heads: 2, MLPRatio: 2.5, Pool: "mean", NumClasses: 3}},
		{Family: "bert", BERT: BERTConfig{VocabSize: 50, Hidden: 16, Layers: 2, Heads: 2, MaxPositions: 20, Pooler: true, MLMHead: true}},
	} {
		m, err := s.Build(rand.New(rand.NewPCG(1, 1)))
		if err != nil {
			t.Fatal(err)
		}
		st := nn.StateOf(m)
		built := 0
		for _, p := range st.Params {
			built += p.Var.Value.Numel()
		}
		for _, b := range st.Buffers {
			if b.T != nil {
				built += b.T.Numel()
			}
		}
		if got, err := s.Values(); err != nil || got != float64(built) {
			t.Errorf("%+v: Values %v (%v), built %d", s, got, err, built)
		}
	}
}
