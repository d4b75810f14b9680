package ssl

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Run describes a training run, which the default recipes scale to: the
// batch size (learning rates follow the linear scaling rule) and the
// schedule length (warmup, cosine decay, momentum schedules, prototype
// freezing).
type Run struct {
	Batch, StepsPerEpoch, Epochs int
}

// methodNames are the registered methods, in the order the seed lists them.
var methodNames = []string{"simclr", "mocov2", "mocov3", "byol", "swav"}

// MethodNames lists the methods New builds.
func MethodNames() []string { return append([]string(nil), methodNames...) }

// New builds the named method around backbone with its published recipe
// scaled to run.
func New(name string, backbone Encoder, run Run, rng *rand.Rand) (Method, error) {
	if run.Batch < 2 || run.StepsPerEpoch < 1 || run.Epochs < 1 {
		return nil, fmt.Errorf("ssl: run of %d epochs x %d steps at batch %d: need batch >= 2 and at least one step",
			run.Epochs, run.StepsPerEpoch, run.Batch)
	}
	b, s, e := run.Batch, run.StepsPerEpoch, run.Epochs
	switch name {
	case "simclr":
		return NewSimCLR(DefaultSimCLRConfig(b, s, e), backbone, rng)
	case "mocov2":
		return NewMoCoV2(DefaultMoCoV2Config(b, s, e), backbone, rng)
	case "mocov3":
		return NewMoCoV3(DefaultMoCoV3Config(backbone, b, s, e), backbone, rng)
	case "byol":
		return NewBYOL(DefaultBYOLConfig(b, s, e), backbone, rng)
	case "swav":
		return NewSwAV(DefaultSwAVConfig(b, s, e), backbone, rng)
	}
	return nil, fmt.Errorf("ssl: unknown method %q (known: %s)", name, strings.Join(methodNames, ", "))
}
