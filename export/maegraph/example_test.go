package maegraph_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"github.com/sslzoo/sslzoo/export"
	"github.com/sslzoo/sslzoo/export/maegraph"
	"github.com/sslzoo/sslzoo/zoo"
	"github.com/sslzoo/sslzoo/zoo/ssl"
)

// The reconstruction graph of a small MAE: pixels and a mask in, every
// patch's predicted pixels out. export.Export writes it like any Spec.
func ExampleReconstruction() {
	rng := rand.New(rand.NewPCG(1, 2))
	vit, err := zoo.NewViT(zoo.ViTConfig{ImageSize: 16, PatchSize: 4, InChannels: 1, Dim: 16, Depth: 1, Heads: 2}, rng)
	if err != nil {
		panic(err)
	}
	m, err := ssl.NewMAE(ssl.DefaultMAEConfig(vit, 8, 1, 1), vit, rng)
	if err != nil {
		panic(err)
	}
	spec, err := maegraph.Reconstruction("mae-demo", m, export.Metadata{Backbone: "vit-demo"})
	if err != nil {
		panic(err)
	}
	for _, in := range spec.Inputs {
		fmt.Println("input", in.Name, in.Shape)
	}
	fmt.Println("outputs", spec.Outputs)
	var desc struct {
		Patches, Keep int
	}
	if err := json.Unmarshal([]byte(spec.Metadata[maegraph.Key]), &desc); err != nil {
		panic(err)
	}
	fmt.Println(desc.Patches, "patches,", desc.Keep, "visible; method", spec.Metadata["sslzoo.method"])
	// Output:
	// input pixel_values [1 1 16 16]
	// input mask [1 16]
	// outputs [pred]
	// 16 patches, 4 visible; method mae
}
