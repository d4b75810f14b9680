package nn

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/weights"
)

// StateTensors flattens m's parameters and buffers into safetensors
// tensors under their state_dict names: float32 values as F32, integer
// counters (num_batches_tracked) as I64 scalars, as PyTorch stores them. The
// bytes are copies, so the model may keep training.
func StateTensors(m Module) map[string]*weights.Tensor {
	s := StateOf(m)
	out := make(map[string]*weights.Tensor, len(s.Params)+len(s.Buffers))
	for _, p := range s.Params {
		out[p.Name] = weights.FromFloat32(p.Var.Value)
	}
	for _, b := range s.Buffers {
		if b.Count != nil {
			t, _ := weights.FromInt64([]int{}, []int64{*b.Count}) // 1 value for a scalar: cannot fail
			out[b.Name] = t
		} else {
			out[b.Name] = weights.FromFloat32(b.T)
		}
	}
	return out
}

// SaveState writes m's state_dict to a safetensors file, atomically.
func SaveState(path string, m Module, metadata map[string]string) error {
	return weights.Write(path, StateTensors(m), metadata)
}

// LoadStateFile reads a safetensors file and loads it into m (see LoadState).
func LoadStateFile(path string, m Module, strict bool) error {
	f, err := weights.Read(path)
	if err != nil {
		return err
	}
	if err := LoadState(m, f.Tensors, strict); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// StateError lists everything that kept a state from loading, by name.
type StateError struct {
	Missing    []string // in the model, not in the tensors
	Unexpected []string // in the tensors, not in the model
	Mismatched []string // present in both, with incompatible shape or type
}

func (e *StateError) Error() string {
	var parts []string
	if len(e.Missing) > 0 {
		parts = append(parts, fmt.Sprintf("%d missing keys: %s", len(e.Missing), strings.Join(e.Missing, ", ")))
	}
	if len(e.Unexpected) > 0 {
		parts = append(parts, fmt.Sprintf("%d unexpected keys: %s", len(e.Unexpected), strings.Join(e.Unexpected, ", ")))
	}
	if len(e.Mismatched) > 0 {
		parts = append(parts, fmt.Sprintf("%d mismatched: %s", len(e.Mismatched), strings.Join(e.Mismatched, "; ")))
	}
	return "load state: " + strings.Join(parts, "; ")
}

// DiffState reports which of m's state names tensors lacks and which names
// in tensors m does not have, both sorted. Use it to see what a non-strict
// LoadState skipped (e.g. a classifier head when fine-tuning).
func DiffState(m Module, tensors map[string]*weights.Tensor) (missing, unexpected []string) {
	s := StateOf(m)
	have := map[string]bool{}
	for _, p := range s.Params {
		have[p.Name] = true
	}
	for _, b := range s.Buffers {
		have[b.Name] = true
	}
	for n := range have {
		if _, ok := tensors[n]; !ok {
			missing = append(missing, n)
		}
	}
	for n := range tensors {
		if !have[n] {
			unexpected = append(unexpected, n)
		}
	}
	sort.Strings(missing)
	sort.Strings(unexpected)
	return missing, unexpected
}

// LoadState copies tensors into m's parameters and buffers by state_dict
// name, in place (Vars and buffers keep their identity, so optimizers built
// on m stay valid). Float tensors of any float dtype convert to float32.
//
// With strict, a key missing on either side is an error; without it such
// keys are skipped. Shape mismatches are errors either way, as in
// PyTorch. Everything is checked before anything is copied, so on error m
// is unchanged, and the error lists every offending name.
func LoadState(m Module, tensors map[string]*weights.Tensor, strict bool) error {
	commit, err := prepareLoadState(m, tensors, strict)
	if err != nil {
		return err
	}
	commit()
	return nil
}

// prepareLoadState validates a load and returns the function that performs
// it, so that a checkpoint can check every part before changing any.
func prepareLoadState(m Module, tensors map[string]*weights.Tensor, strict bool) (commit func(), err error) {
	s := StateOf(m)
	serr := &StateError{}
	if strict {
		serr.Missing, serr.Unexpected = DiffState(m, tensors)
	}
	type copyJob struct {
		dst []float32
		src *tensor.Tensor
	}
	var floats []copyJob
	type countJob struct {
		dst *int64
		v   int64
	}
	var counts []countJob

	shapeOK := func(name string, want []int, t *weights.Tensor) bool {
		if !tensor.SameShape(want, t.Shape) {
			serr.Mismatched = append(serr.Mismatched, fmt.Sprintf("%s: checkpoint shape %v, model shape %v", name, t.Shape, want))
			return false
		}
		return true
	}
	loadFloat := func(name string, dst *tensor.Tensor) {
		t, ok := tensors[name]
		if !ok || !shapeOK(name, dst.Shape, t) {
			return
		}
		v, err := t.Float32()
		if err != nil {
			serr.Mismatched = append(serr.Mismatched, fmt.Sprintf("%s: %v", name, err))
			return
		}
		floats = append(floats, copyJob{dst.Data, v})
	}
	for _, p := range s.Params {
		loadFloat(p.Name, p.Var.Value)
	}
	for _, b := range s.Buffers {
		if b.Count == nil {
			loadFloat(b.Name, b.T)
			continue
		}
		t, ok := tensors[b.Name]
		if !ok {
			continue
		}
		if t.Numel() != 1 || len(t.Shape) > 1 {
			serr.Mismatched = append(serr.Mismatched, fmt.Sprintf("%s: checkpoint shape %v, model holds a scalar counter", b.Name, t.Shape))
			continue
		}
		var v int64
		if t.DType.IsFloat() {
			f, err := t.Float32()
			if err != nil || f.Data[0] != float32(math.Trunc(float64(f.Data[0]))) {
				serr.Mismatched = append(serr.Mismatched, fmt.Sprintf("%s: counter holds a non-integer %s value", b.Name, t.DType))
				continue
			}
			v = int64(f.Data[0])
		} else {
			vs, err := t.Int64()
			if err != nil {
				serr.Mismatched = append(serr.Mismatched, fmt.Sprintf("%s: %v", b.Name, err))
				continue
			}
			v = vs[0]
		}
		counts = append(counts, countJob{b.Count, v})
	}
	if len(serr.Missing)+len(serr.Unexpected)+len(serr.Mismatched) > 0 {
		return nil, serr
	}
	return func() {
		for _, j := range floats {
			copy(j.dst, j.src.Data)
		}
		for _, j := range counts {
			*j.dst = j.v
		}
	}, nil
}

// CopyState copies src's parameters and buffers into dst, which must have
// the same names and shapes (e.g. to start a BYOL target network as a copy
// of the online one).
func CopyState(dst, src Module) error {
	return LoadState(dst, StateTensors(src), true)
}
