package nn

import (
	"fmt"
	"math/rand/v2"
)

// MLPConfig describes a multilayer perceptron such as the projection and
// prediction heads of SimCLR, BYOL, MoCo v3 or Barlow Twins.
type MLPConfig struct {
	// Dims is [in, hidden..., out]; at least [in, out].
	Dims []int
	// Activation after every hidden layer: "relu" (default when empty),
	// "gelu", "tanh", "sigmoid" or "identity".
	Activation string
	// BatchNorm inserts BatchNorm1d after every hidden Linear, before the
	// activation (SimCLR, BYOL).
	BatchNorm bool
	// LastBatchNorm adds BatchNorm1d after the output Linear too (SimCLR
	// v2, MoCo v3, Barlow Twins' projector ends without it).
	LastBatchNorm bool
	// NoBiasBeforeBN drops the bias of Linear layers followed by BatchNorm,
	// where BN's shift makes it redundant (MoCo v3, Barlow Twins).
	NoBiasBeforeBN bool
}

// MLP is a Sequential laid out exactly as the PyTorch heads write it:
// Linear, [BatchNorm1d], activation, ..., Linear, [BatchNorm1d], so its
// state_dict names ("0.weight", "1.running_mean", ...) match theirs.
type MLP struct {
	*Sequential
	Config MLPConfig
}

// NewMLP builds an MLP with PyTorch's default initialisation.
func NewMLP(cfg MLPConfig, rng *rand.Rand) (*MLP, error) {
	if len(cfg.Dims) < 2 {
		return nil, fmt.Errorf("nn: MLP needs at least input and output sizes, got dims %v", cfg.Dims)
	}
	for _, d := range cfg.Dims {
		if d <= 0 {
			return nil, fmt.Errorf("nn: MLP dims %v must be positive", cfg.Dims)
		}
	}
	actName := cfg.Activation
	if actName == "" {
		actName = "relu"
	}
	act, err := Activation(actName)
	if err != nil {
		return nil, err
	}
	var layers []Layer
	n := len(cfg.Dims) - 1
	for i := range n {
		last := i == n-1
		bn := cfg.BatchNorm && !last || cfg.LastBatchNorm && last
		layers = append(layers, NewLinear(cfg.Dims[i], cfg.Dims[i+1], !(bn && cfg.NoBiasBeforeBN), rng))
		if bn {
			layers = append(layers, NewBatchNorm(cfg.Dims[i+1]))
		}
		if !last {
			layers = append(layers, act)
		}
	}
	return &MLP{Sequential: NewSequential(layers...), Config: cfg}, nil
}
