// Package nn holds sslzoo's layers, initialisers, optimizers and schedules.
// Modules name their parameters and buffers exactly as PyTorch's state_dict
// does, so PyTorch checkpoints map onto them by name alone.
package nn

import (
	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/tensor"
)

// Param is a trainable tensor with its full state_dict name.
type Param struct {
	Name string
	Var  *autograd.Var
}

// Buffer is persistent non-trainable state with its full state_dict name,
// e.g. BatchNorm's running_mean. Exactly one of T and Count is set: Count
// holds integer counters such as num_batches_tracked (int64 in PyTorch).
type Buffer struct {
	Name  string
	T     *tensor.Tensor
	Count *int64
}

// State is the flattened parameters and buffers of a module tree.
type State struct {
	Params  []Param
	Buffers []Buffer
}

// Module is anything that owns parameters or buffers.
type Module interface {
	// CollectState appends the module's parameters and buffers to s, each
	// name prefixed with prefix (use Join to build child prefixes).
	CollectState(prefix string, s *State)
	// SetTraining switches train/eval mode, recursively.
	SetTraining(on bool)
}

// Join builds a dotted state_dict name, skipping an empty prefix.
func Join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// StateOf collects m's state and stamps each parameter Var with its full
// name, which ONNX export uses for initializers.
func StateOf(m Module) *State {
	s := &State{}
	m.CollectState("", s)
	for _, p := range s.Params {
		p.Var.Name = p.Name
	}
	return s
}

// Vars lists the parameter Vars of a state, e.g. for an optimizer.
func (s *State) Vars() []*autograd.Var {
	vs := make([]*autograd.Var, len(s.Params))
	for i, p := range s.Params {
		vs[i] = p.Var
	}
	return vs
}
