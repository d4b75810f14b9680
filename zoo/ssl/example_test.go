package ssl_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/zoo"
	"github.com/sslzoo/sslzoo/zoo/ssl"
)

// Train BYOL on a ResNet-18 (CIFAR stem, quarter width) with the paper's
// recipe scaled to batch 64 and a 10-epoch run of 100 steps per epoch.
func ExampleNew() {
	fmt.Println(ssl.MethodNames())
	rng := rand.New(rand.NewPCG(1, 2))
	backbone, err := zoo.NewResNet(zoo.ResNetConfig{Depth: 18, Stem: "cifar", Width: 0.25}, rng)
	if err != nil {
		panic(err)
	}
	m, err := ssl.New("byol", backbone, ssl.Run{Batch: 64, StepsPerEpoch: 100, Epochs: 10}, rng)
	if err != nil {
		panic(err)
	}
	cfg, _ := json.Marshal(m.Configuration())
	fmt.Println(m.Name(), len(cfg) > 0, m.Optimizer().LR())

	// The same recipe with narrower heads, built directly.
	bc := ssl.DefaultBYOLConfig(64, 100, 10)
	bc.ProjHidden, bc.PredHidden = 256, 256
	m, err = ssl.NewBYOL(bc, backbone, rng)
	if err != nil {
		panic(err)
	}

	// Each iteration takes the augmented views of one batch.
	tp := autograd.NewTape()
	views := []*tensor.Tensor{tensor.New(4, 3, 16, 16), tensor.New(4, 3, 16, 16)}
	for i := range views[1].Data {
		views[0].Data[i] = float32(i%7) / 7
		views[1].Data[i] = float32(i%5) / 5
	}
	if _, err := m.Step(tp, views); err != nil {
		panic(err)
	}
	fmt.Println("steps", m.Steps())
	// Output:
	// [simclr mocov2 mocov3 byol swav mae barlow vicreg simsiam dino jigsaw colorization deepcluster deepclusterv2]
	// byol true 0
	// steps 1
}
