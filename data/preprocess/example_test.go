package preprocess_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"

	"github.com/sslzoo/sslzoo/data/preprocess"
)

// A spec as it is stored in a model's metadata, applied to one file.
func ExampleSpec_File() {
	var spec preprocess.Spec
	meta := `{"layout":"NCHW","channels":"RGB","size":[16,16],"resize_size":20,"resize":"bilinear",
		"crop":"center","scale":0.00392156862745098,"mean":[0.485,0.456,0.406],"std":[0.229,0.224,0.225]}`
	if err := json.Unmarshal([]byte(meta), &spec); err != nil {
		log.Fatal(err)
	}
	x, err := spec.File("testdata/golden/rgba.png") // 40x30: resized to 26x20, then cropped
	if err != nil {
		log.Fatal(err)
	}
	c, h, w := spec.Shape()
	fmt.Printf("%d values: %dx%dx%d\n", len(x), c, h, w)
	// Output: 768 values: 3x16x16
}

// Expanding command-line inputs and reading them in batches, skipping the
// files that cannot be read.
func ExampleFiles() {
	paths, err := preprocess.ExpandInputs([]string{"testdata/golden/*.png", "testdata/broken.png", "testdata/golden/palette.gif"})
	if err != nil {
		log.Fatal(err)
	}
	spec := preprocess.Spec{Channels: "L", Size: [2]int{16, 16}, ResizeSize: 16, Crop: "center",
		Scale: 1.0 / 255, Mean: []float64{0.5}, Std: []float64{0.5}}
	opts := preprocess.Options{BatchSize: 4, OnError: preprocess.Skip,
		Warn: func(i int, path string, err error) { fmt.Println("skipped", path) }}
	for batch, err := range preprocess.Files(context.Background(), paths, spec, opts) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d images (%d values), inputs %v\n", len(batch.Indices), len(batch.Data), batch.Indices)
	}
	// Output:
	// 4 images (1024 values), inputs [0 1 2 3]
	// skipped testdata/broken.png
	// 2 images (512 values), inputs [4 6]
}
