package ssl

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/weights"
	"github.com/sslzoo/sslzoo/zoo"
)

// LoadEncoder rebuilds the backbone a Train run saved, from its FinalFile
// (the backbone's state, the spec under MetaTrain) or a CheckpointFile (the
// method's state with the backbone under "backbone.", the spec under
// CheckpointMetaTrain), and loads its weights. rng initialises the backbone
// first; with randomInit the weights are left so, which gives an untrained
// backbone of the run's configuration.
func LoadEncoder(path string, rng *rand.Rand, randomInit bool) (Encoder, TrainSpec, error) {
	return LoadEncoderPooled(path, "", rng, randomInit)
}

// LoadEncoderPooled is LoadEncoder with a ViT's pooling replaced by pool
// (PoolCLS or PoolMean; "" keeps the run's). The weights are the same
// either way: only the embedding taken from the last tokens changes.
func LoadEncoderPooled(path, pool string, rng *rand.Rand, randomInit bool) (Encoder, TrainSpec, error) {
	f, err := weights.Read(path)
	if err != nil {
		return nil, TrainSpec{}, err
	}
	raw, ok := f.Metadata[MetaTrain]
	ckpt := false
	if !ok {
		raw, ckpt = f.Metadata[CheckpointMetaTrain], true
	}
	var spec TrainSpec
	if raw == "" {
		return nil, spec, fmt.Errorf("%s has no %s metadata: not written by sslzoo train", path, MetaTrain)
	}
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		return nil, spec, fmt.Errorf("%s: bad %s metadata: %w", path, MetaTrain, err)
	}
	if pool != "" {
		spec.Pool = pool
	}
	enc, err := spec.NewBackbone(rng)
	if err != nil {
		return nil, spec, fmt.Errorf("%s: %w", path, err)
	}
	if randomInit {
		return enc, spec, nil
	}
	ts := f.Tensors
	if ckpt {
		ts = map[string]*weights.Tensor{}
		for n, t := range f.Tensors {
			if rest, ok := strings.CutPrefix(n, "backbone."); ok {
				ts[rest] = t
			}
		}
	}
	if err := nn.LoadState(enc, ts, true); err != nil {
		return nil, spec, fmt.Errorf("%s: %w", path, err)
	}
	return enc, spec, nil
}

// LoadMAECheckpoint rebuilds the MAE (encoder and decoder) an MAE run's
// CheckpointFile was written by and loads its weights, in eval mode.
func LoadMAECheckpoint(path string) (*MAE, TrainSpec, error) {
	spec, cfgJSON, enc, rng, err := readTrainingCheckpoint(path, "mae", "the encoder", "reconstruction needs the decoder")
	if err != nil {
		return nil, TrainSpec{}, err
	}
	var cfg MAEConfig
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return nil, TrainSpec{}, fmt.Errorf("%s: MAE config: %w", path, err)
	}
	vit, ok := enc.(*zoo.ViT)
	if !ok {
		return nil, TrainSpec{}, fmt.Errorf("%s: backbone %s is not a ViT", path, spec.Arch)
	}
	m, err := NewMAE(cfg, vit, rng)
	if err != nil {
		return nil, TrainSpec{}, err
	}
	if _, _, err := nn.LoadCheckpoint(path, m, nil, nil); err != nil {
		return nil, TrainSpec{}, err
	}
	m.SetTraining(false)
	return m, spec, nil
}

// LoadColorizationCheckpoint rebuilds a Colorization model, backbone and
// colour head, from a training checkpoint (CheckpointFile of a
// colorization run; FinalFile holds the backbone only), for Colorize.
func LoadColorizationCheckpoint(path string) (*Colorization, TrainSpec, error) {
	spec, cfgJSON, enc, rng, err := readTrainingCheckpoint(path, "colorization", "the backbone", "colouring needs the colour head")
	if err != nil {
		return nil, TrainSpec{}, err
	}
	var cfg ColorizationConfig
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return nil, TrainSpec{}, fmt.Errorf("%s: colorization config: %w", path, err)
	}
	m, err := NewColorization(cfg, enc, rng)
	if err != nil {
		return nil, TrainSpec{}, err
	}
	if _, _, err := nn.LoadCheckpoint(path, m, nil, nil); err != nil {
		return nil, TrainSpec{}, err
	}
	m.SetTraining(false)
	return m, spec, nil
}

// readTrainingCheckpoint reads the run spec and method config of a
// training checkpoint written by method, and builds a fresh backbone from
// the spec seeded as the run was. For a final weights file given instead,
// the error says it holds only part and what need is missing.
func readTrainingCheckpoint(path, method, part, need string) (TrainSpec, []byte, Encoder, *rand.Rand, error) {
	f, err := weights.Read(path)
	if err != nil {
		return TrainSpec{}, nil, nil, nil, err
	}
	var spec TrainSpec
	if err := json.Unmarshal([]byte(f.Metadata[CheckpointMetaTrain]), &spec); err != nil {
		if _, final := f.Metadata[MetaTrain]; final {
			return TrainSpec{}, nil, nil, nil, fmt.Errorf("%s holds %s only; %s: use %s from the same run", path, part, need, CheckpointFile)
		}
		return TrainSpec{}, nil, nil, nil, fmt.Errorf("%s is not an sslzoo training checkpoint (no %s metadata)", path, CheckpointMetaTrain)
	}
	if spec.Method != method {
		return TrainSpec{}, nil, nil, nil, fmt.Errorf("%s was written by %q training, not %s", path, spec.Method, method)
	}
	rng := rand.New(rand.NewPCG(spec.Seed, 0))
	enc, err := spec.NewBackbone(rng)
	if err != nil {
		return TrainSpec{}, nil, nil, nil, err
	}
	return spec, []byte(f.Metadata[CheckpointMetaMethodConfig]), enc, rng, nil
}
