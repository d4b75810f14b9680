package export_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/sslzoo/sslzoo/export"
	"github.com/sslzoo/sslzoo/zoo"
)

// Export a ViT backbone with mean pooling: NewBackbone fills in the
// metadata and the tracing spec, Export writes the file.
func ExampleNewBackbone() {
	spec, err := zoo.Arch("vit-tiny")
	if err != nil {
		panic(err)
	}
	spec.ViT.ImageSize, spec.ViT.PatchSize, spec.ViT.Depth = 32, 4, 1
	m, err := spec.Build(rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		panic(err)
	}
	b, err := export.NewBackbone("vit-tiny", m, export.BackboneOptions{Pool: export.PoolMean})
	if err != nil {
		panic(err)
	}
	fmt.Println(b.Spec.Inputs[0].Name, b.Channels, b.Height, b.Width, b.Spec.Outputs)
	fmt.Println(b.Spec.Metadata["sslzoo.backbone"], b.Spec.Metadata["sslzoo.embedding_dim"], b.Spec.Metadata[export.PoolingKey])

	dir, err := os.MkdirTemp("", "export-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	if err := export.Export(b.Spec, filepath.Join(dir, "vit.onnx"), export.SaveOptions{}); err != nil {
		panic(err)
	}
	fmt.Println("written")
	// Output:
	// pixel_values 3 32 32 [embedding]
	// vit-tiny 192 mean
	// written
}
