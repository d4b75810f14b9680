package zoo_test

import (
	"fmt"

	"github.com/sslzoo/sslzoo/zoo"
)

// Weighing an architecture before building it: a configuration read from
// a file can ask for far more memory than the file could ever fill.
func ExampleSpec_Values() {
	spec, err := zoo.Arch("resnet18-cifar")
	if err != nil {
		panic(err)
	}
	spec.ResNet.Width, spec.ResNet.InChannels = 0.25, 1
	n, err := spec.Values()
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s at width 0.25: %.0f values (%.1f MiB of float32)\n", spec.Name, n, n*4/(1<<20))
	// Output: resnet18-cifar at width 0.25: 702288 values (2.7 MiB of float32)
}
