package data_test

import (
	"context"
	"fmt"
	"io"
	"log"

	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/data/augment"
)

// Two SimCLR views of every Fashion-MNIST image at 32x32, 256 per batch.
// (Compiled, not run: it needs Debian's dataset-fashion-mnist.)
func ExampleLoader() {
	train, err := data.Open(context.Background(), "fashion-mnist", data.OpenOptions{Train: true})
	if err != nil {
		log.Fatal(err)
	}
	loader, err := data.NewLoader(train, data.LoaderConfig{
		BatchSize: 256,
		Shuffle:   true,
		Seed:      1,
		DropLast:  true,
		Views:     augment.SimCLR(32, 0.5, true, augment.FashionMNISTNorm),
	})
	if err != nil {
		log.Fatal(err)
	}
	it := loader.Epoch(context.Background(), 0)
	defer it.Close()
	for step := 0; ; step++ {
		b, err := it.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		if step == 0 {
			fmt.Println(len(b.Views), b.Views[0].Shape, b.Views[1].Shape, len(b.Labels))
		}
		// ... train on b.Views[0] and b.Views[1] ...
		b.Release()
		if step == 2 {
			break
		}
	}
	// Prints: 2 [256 1 32 32] [256 1 32 32] 256
}
