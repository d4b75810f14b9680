package ssl_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/zoo/ssl"
)

// Train SimCLR for two epochs on 32 small in-memory images with a
// 1/16-width ResNet-18, then load the trained backbone back from its file.
// The hooks here only count; a program would print progress from them.
func ExampleTrain() {
	ds := &data.Images{Name: "stripes", N: 32, C: 1, H: 16, W: 16, Pix: make([]uint8, 32*16*16)}
	for i := range ds.Pix {
		img, row := i/256, i%256/16
		if row%4 == img%4 {
			ds.Pix[i] = 200
		}
	}
	out, err := os.MkdirTemp("", "ssl-train-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(out)

	steps := 0
	res, err := ssl.Train(context.Background(), ssl.TrainConfig{
		Method: "simclr", Arch: "resnet18-cifar", Width: 0.0625, Size: 16, Epochs: 2, Batch: 8, Out: out,
	}, ds, ssl.TrainHooks{
		Step: func(ssl.TrainStep) { steps++ },
		Epoch: func(e ssl.TrainEpoch) {
			fmt.Printf("epoch %d done at step %d\n", e.Record.Epoch, e.Record.Step)
		},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(steps, "steps;", res.Method.Name(), "on", res.Spec.Arch, "width", res.Spec.Width, "with", res.Spec.InChannels, "channel")
	fmt.Println("wrote", filepath.Base(res.Final), filepath.Base(res.Checkpoint), filepath.Base(res.Metrics))

	enc, spec, err := ssl.LoadEncoder(res.Final, rand.New(rand.NewPCG(1, 1)), false)
	if err != nil {
		panic(err)
	}
	fmt.Println("loaded a", enc.FeatureDim(), "-d encoder trained", spec.Epochs, "epochs at", spec.Size, "px")
	// Output:
	// epoch 1 done at step 4
	// epoch 2 done at step 8
	// 8 steps; simclr on resnet18-cifar width 0.0625 with 1 channel
	// wrote final.safetensors checkpoint.safetensors metrics.jsonl
	// loaded a 32 -d encoder trained 2 epochs at 16 px
}
