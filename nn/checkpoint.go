package nn

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sslzoo/sslzoo/weights"
)

// RNG is a random source whose state can be saved and restored, such as
// math/rand/v2's *rand.PCG and *rand.ChaCha8. Training code draws from a
// rand.Rand built on it (rand.New(src)); rand.Rand buffers nothing, so
// restoring the source restores the whole stream.
type RNG interface {
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
}

// Checkpoint layout, in one safetensors file:
//   - the model's state_dict under its own names, so the file also loads as
//     plain weights (LoadState with strict=false, or DiffState to see the
//     extra keys);
//   - optimizer state under "optim." (see OptimizerState);
//   - the RNG state as a U8 tensor "rng.state";
//   - metadata: the caller's keys plus sslzoo.checkpoint, sslzoo.step and
//     sslzoo.optimizer (the optimizer's Go type, checked on load).
const (
	rngKey       = "rng.state"
	metaFormat   = "sslzoo.checkpoint"
	metaStep     = "sslzoo.step"
	metaOptim    = "sslzoo.optimizer"
	ckptVersion  = "1"
	reservedRNG  = "rng."
	reservedMeta = "sslzoo."
)

// SaveCheckpoint writes everything a training run needs to continue
// exactly where it stopped: model parameters and buffers, the optimizer's
// state (which must implement OptimizerState; nil saves none), the step,
// the RNG state (nil saves none) and the caller's metadata (e.g. the run's
// config as JSON). The write is atomic.
func SaveCheckpoint(path string, model Module, opt Optimizer, step int64, rng RNG, meta map[string]string) error {
	ts := StateTensors(model)
	for name := range ts {
		if strings.HasPrefix(name, optimPrefix) || strings.HasPrefix(name, reservedRNG) {
			return fmt.Errorf("save checkpoint %s: model tensor %q uses a name reserved for optimizer or RNG state", path, name)
		}
	}
	md := map[string]string{}
	for k, v := range meta {
		if strings.HasPrefix(k, reservedMeta) {
			return fmt.Errorf("save checkpoint %s: metadata key %q is reserved", path, k)
		}
		md[k] = v
	}
	md[metaFormat] = ckptVersion
	md[metaStep] = strconv.FormatInt(step, 10)
	if opt != nil {
		st, ok := opt.(OptimizerState)
		if !ok {
			return fmt.Errorf("save checkpoint %s: optimizer %T cannot save its state", path, opt)
		}
		for n, t := range st.StateTensors() {
			ts[n] = t
		}
		md[metaOptim] = fmt.Sprintf("%T", opt)
	}
	if rng != nil {
		b, err := rng.MarshalBinary()
		if err != nil {
			return fmt.Errorf("save checkpoint %s: rng state: %w", path, err)
		}
		ts[rngKey] = weights.FromBytes(b)
	}
	if err := weights.Write(path, ts, md); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	return nil
}

// LoadCheckpoint restores a checkpoint written by SaveCheckpoint into model,
// opt and rng (either may be nil to skip it) and returns the saved step and
// the caller's metadata. The model must match the saved state exactly
// (strict), and opt must be the same optimizer type as the one saved.
//
// Every part is validated before the model changes; a failure while
// restoring the optimizer or RNG (after validation) can leave those two
// partly restored, so discard them on error.
func LoadCheckpoint(path string, model Module, opt Optimizer, rng RNG) (step int64, meta map[string]string, err error) {
	f, err := weights.Read(path)
	if err != nil {
		return 0, nil, fmt.Errorf("load checkpoint: %w", err)
	}
	fail := func(format string, args ...any) (int64, map[string]string, error) {
		return 0, nil, fmt.Errorf("load checkpoint %s: %s", path, fmt.Sprintf(format, args...))
	}
	if v := f.Metadata[metaFormat]; v != ckptVersion {
		return fail("not an sslzoo checkpoint (metadata %s = %q, want %q)", metaFormat, v, ckptVersion)
	}
	step, err = strconv.ParseInt(f.Metadata[metaStep], 10, 64)
	if err != nil {
		return fail("bad %s: %v", metaStep, err)
	}
	modelTs, optTs := map[string]*weights.Tensor{}, map[string]*weights.Tensor{}
	for n, t := range f.Tensors {
		switch {
		case strings.HasPrefix(n, optimPrefix):
			optTs[n] = t
		case n == rngKey:
		default:
			modelTs[n] = t
		}
	}
	commit, err := prepareLoadState(model, modelTs, true)
	if err != nil {
		return fail("%v", err)
	}
	if opt != nil {
		st, ok := opt.(OptimizerState)
		if !ok {
			return fail("optimizer %T cannot load state", opt)
		}
		saved, ok := f.Metadata[metaOptim]
		if !ok {
			return fail("checkpoint holds no optimizer state")
		}
		if saved != fmt.Sprintf("%T", opt) {
			return fail("checkpoint holds %s state, not %T", saved, opt)
		}
		if err := st.LoadStateTensors(optTs); err != nil {
			return fail("%v", err)
		}
	}
	if rng != nil {
		t, ok := f.Tensors[rngKey]
		if !ok {
			return fail("checkpoint holds no RNG state")
		}
		if t.DType != weights.U8 {
			return fail("%s is %s, want U8", rngKey, t.DType)
		}
		if err := rng.UnmarshalBinary(t.Data); err != nil {
			return fail("rng state: %v", err)
		}
	}
	commit()
	meta = map[string]string{}
	for k, v := range f.Metadata {
		if !strings.HasPrefix(k, reservedMeta) {
			meta[k] = v
		}
	}
	return step, meta, nil
}
