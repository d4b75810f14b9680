// Package autograd is sslzoo's reverse-mode automatic differentiation.
//
// Every op runs eagerly on a Tape, which records the op's name, attributes,
// inputs and output together with a closure that computes the input
// gradients. Backward replays the record in reverse. The same record is what
// ONNX export walks, so one model definition serves training, inference and
// export.
//
// Memory: a Tape allocates op outputs and intermediate gradients from its own
// tensor.Pool. Reset hands them all back, so a training loop that calls Reset
// once per step reuses the same buffers every step. Values read out of a tape
// must be copied before Reset.
package autograd

import (
	"fmt"

	"github.com/sslzoo/sslzoo/tensor"
)

// Var is a tensor in the graph: a parameter, an input, or an op's output.
type Var struct {
	Value *tensor.Tensor
	// Grad is the accumulated gradient. For leaves (parameters) it persists
	// across Backward calls until ZeroGrad; for op outputs it lives only
	// while Backward needs it, unless the tape was asked to retain it.
	Grad *tensor.Tensor
	// Name is the parameter's state_dict name; export uses it for
	// initializers. Empty for activations.
	Name string

	requiresGrad bool
	leaf         bool
	retain       bool
	creator      *Node
}

// NewParam makes a leaf that collects gradients, e.g. a weight.
func NewParam(name string, value *tensor.Tensor) *Var {
	return &Var{Value: value, Name: name, requiresGrad: true, leaf: true}
}

// Const makes a leaf that never collects gradients, e.g. an input batch.
func Const(value *tensor.Tensor) *Var {
	return &Var{Value: value, leaf: true}
}

// RequiresGrad reports whether gradients flow to v.
func (v *Var) RequiresGrad() bool { return v.requiresGrad }

// SetRequiresGrad freezes (false) or unfreezes (true) a leaf.
func (v *Var) SetRequiresGrad(on bool) {
	if v.leaf {
		v.requiresGrad = on
	}
}

// IsLeaf reports whether v was made by NewParam or Const rather than an op.
func (v *Var) IsLeaf() bool { return v.leaf }

// Creator is the node that produced v, or nil for leaves and for outputs
// computed under NoGrad.
func (v *Var) Creator() *Node { return v.creator }

// Shape is a shortcut for v.Value.Shape.
func (v *Var) Shape() []int { return v.Value.Shape }

// ZeroGrad clears a leaf's accumulated gradient.
func (v *Var) ZeroGrad() {
	if v.Grad != nil {
		v.Grad.Zero()
	}
}

// Node is one recorded op.
type Node struct {
	Op      string         // engine op name, e.g. "MatMul", "Conv2d"
	Attrs   map[string]any // op attributes, as export needs them
	Inputs  []*Var
	Outputs []*Var
	// backward reads the outputs' Grad and accumulates into the inputs'
	// gradients through Tape.GradOf.
	backward func()
}

// Tape records ops and owns their buffers.
type Tape struct {
	nodes  []*Node
	pool   *tensor.Pool
	owned  [][]float32 // op outputs to return to the pool on Reset
	noGrad int
	// crossSum, when set, sums a buffer over the replicas of a data-parallel
	// run in place; BatchNorm then normalises with the global batch's
	// statistics (SetCrossReplicaSum).
	crossSum func([]float32) error
}

// SetCrossReplicaSum makes the tape's training-mode BatchNorms synchronised
// across the replicas of a data-parallel run, as PyTorch's SyncBatchNorm:
// sum must replace its buffer, on every replica, by the element-wise sum over
// all of them (an MPI allreduce). The statistics then cover the global batch,
// and the backward pass sums its per-channel reductions the same way. Every
// replica must run the same BatchNorms in the same order. nil turns it off.
func (tp *Tape) SetCrossReplicaSum(sum func([]float32) error) { tp.crossSum = sum }

// Unsynchronised runs fn with BatchNorm local to this replica, for ops on
// data that is already the global batch (rows gathered from every
// replica), whose statistics a cross-replica sum would count K times.
func (tp *Tape) Unsynchronised(fn func()) {
	saved := tp.crossSum
	tp.crossSum = nil
	defer func() { tp.crossSum = saved }()
	fn()
}

// NewTape returns an empty tape with its own buffer pool.
func NewTape() *Tape { return &Tape{pool: tensor.NewPool()} }

// Nodes is the record so far, in execution order.
func (tp *Tape) Nodes() []*Node { return tp.nodes }

// Pool is the tape's buffer pool, for ops and kernels that need scratch space.
func (tp *Tape) Pool() *tensor.Pool { return tp.pool }

// NoGrad runs fn with recording off: ops still compute, but their outputs
// carry no history and no gradient. This is how target networks (BYOL, MoCo)
// run.
func (tp *Tape) NoGrad(fn func()) {
	tp.noGrad++
	defer func() { tp.noGrad-- }()
	fn()
}

// Recording reports whether ops are being recorded (i.e. not inside NoGrad).
func (tp *Tape) Recording() bool { return tp.noGrad == 0 }

// Alloc returns an output tensor whose buffer the tape reclaims on Reset.
// Its contents are undefined: the op must overwrite every element.
func (tp *Tape) Alloc(shape ...int) *tensor.Tensor {
	b := tp.pool.Get(tensor.Numel(shape))
	tp.owned = append(tp.owned, b)
	return &tensor.Tensor{Shape: append([]int(nil), shape...), Data: b}
}

// Recycle hands an Alloc'd buffer back to the pool before Reset, for an
// inference executor that knows the buffer's last reader has run. b may be
// any slice of the buffer. It reports whether b was the tape's; buffers it
// does not own (inputs, weights) are left alone. Recording tapes refuse:
// the backward pass may still read the buffer.
func (tp *Tape) Recycle(b []float32) bool {
	if tp.Recording() || cap(b) == 0 {
		return false
	}
	id := tensor.BufferID(b)
	// Recent outputs die first, so search from the back.
	for i := len(tp.owned) - 1; i >= 0; i-- {
		if tensor.BufferID(tp.owned[i]) == id {
			tp.pool.Put(tp.owned[i])
			last := len(tp.owned) - 1
			tp.owned[i] = tp.owned[last]
			tp.owned[last] = nil
			tp.owned = tp.owned[:last]
			return true
		}
	}
	return false
}

// Owns reports whether b is a buffer this tape handed out (Alloc) and
// still holds, so that a caller that knows b's last reader has run may
// reuse it.
func (tp *Tape) Owns(b []float32) bool {
	if cap(b) == 0 {
		return false
	}
	id := tensor.BufferID(b)
	for i := len(tp.owned) - 1; i >= 0; i-- {
		if tensor.BufferID(tp.owned[i]) == id {
			return true
		}
	}
	return false
}

// HeldBytes is the size of the op outputs the tape holds until Reset.
func (tp *Tape) HeldBytes() int64 {
	var n int64
	for _, b := range tp.owned {
		n += int64(cap(b)) * 4
	}
	return n
}

// AllocZeroed is Alloc with the buffer cleared.
func (tp *Tape) AllocZeroed(shape ...int) *tensor.Tensor {
	t := tp.Alloc(shape...)
	clear(t.Data)
	return t
}

// Scratch returns a buffer for use inside one op; release it with Release.
func (tp *Tape) Scratch(n int) []float32 { return tp.pool.Get(n) }

// Release returns a Scratch buffer.
func (tp *Tape) Release(b []float32) { tp.pool.Put(b) }

// Record registers an op's single output. It returns the output Var, which
// carries history only when recording is on and some input needs gradients.
// backward may be nil for ops with no gradient (e.g. argmax); it is only
// called when the output received a gradient.
func (tp *Tape) Record(op string, attrs map[string]any, out *tensor.Tensor, inputs []*Var, backward func(out *Var)) *Var {
	return tp.RecordMulti(op, attrs, []*tensor.Tensor{out}, inputs, func(outs []*Var) {
		if backward != nil {
			backward(outs[0])
		}
	})[0]
}

// RecordMulti is Record for ops with several outputs.
func (tp *Tape) RecordMulti(op string, attrs map[string]any, outs []*tensor.Tensor, inputs []*Var, backward func(outs []*Var)) []*Var {
	vars := make([]*Var, len(outs))
	needGrad := false
	if tp.noGrad == 0 {
		for _, in := range inputs {
			needGrad = needGrad || in.requiresGrad
		}
	}
	for i, o := range outs {
		vars[i] = &Var{Value: o, requiresGrad: needGrad}
	}
	if tp.noGrad > 0 {
		return vars
	}
	n := &Node{Op: op, Attrs: attrs, Inputs: inputs, Outputs: vars}
	if needGrad && backward != nil {
		n.backward = func() { backward(vars) }
	}
	for _, v := range vars {
		v.creator = n
	}
	tp.nodes = append(tp.nodes, n)
	return vars
}

// GradOf returns v's gradient buffer, allocating a zeroed one on first use,
// or nil when v does not need a gradient. Backward closures accumulate into
// it (+=), which is what makes a Var usable by several ops.
func (tp *Tape) GradOf(v *Var) *tensor.Tensor {
	if !v.requiresGrad {
		return nil
	}
	if v.Grad == nil {
		if v.leaf {
			v.Grad = tensor.New(v.Value.Shape...)
		} else {
			v.Grad = &tensor.Tensor{Shape: append([]int(nil), v.Value.Shape...), Data: tp.pool.GetZeroed(v.Value.Numel())}
		}
	}
	return v.Grad
}

// GradForWrite is GradOf for backward closures that write every element
// of the gradient: when fresh is true the buffer was just allocated, its
// contents are undefined, and the op must overwrite it (saving the zeroing
// pass plus a read); when false it already holds gradient and the op must
// accumulate (+=) as usual. It returns nil when v needs no gradient.
func (tp *Tape) GradForWrite(v *Var) (g *tensor.Tensor, fresh bool) {
	if !v.requiresGrad {
		return nil, false
	}
	if v.Grad != nil || v.leaf {
		return tp.GradOf(v), false
	}
	v.Grad = &tensor.Tensor{Shape: append([]int(nil), v.Value.Shape...), Data: tp.pool.Get(v.Value.Numel())}
	return v.Grad, true
}

// RetainGrad keeps v's gradient after Backward (until Reset), e.g. to read
// the gradient of a loss with respect to embeddings.
func (tp *Tape) RetainGrad(v *Var) { v.retain = true }

// Backward computes the gradient of the scalar loss with respect to every
// Var that requires it, accumulating into leaves' Grad.
func (tp *Tape) Backward(loss *Var) error {
	if loss.Value.Numel() != 1 {
		return fmt.Errorf("autograd: Backward needs a scalar loss, got shape %v", loss.Value.Shape)
	}
	return tp.BackwardWith(loss, tensor.FromSlice([]float32{1}, loss.Value.Shape...))
}

// BackwardWith seeds the backward pass of out with the gradient seed
// (same shape as out) instead of 1.
func (tp *Tape) BackwardWith(out *Var, seed *tensor.Tensor) error {
	if !out.requiresGrad {
		return fmt.Errorf("autograd: Backward on a value that does not require gradients (no parameter reaches it, or it was computed under NoGrad)")
	}
	if !tensor.SameShape(seed.Shape, out.Value.Shape) {
		return fmt.Errorf("autograd: gradient seed shape %v does not match output shape %v", seed.Shape, out.Value.Shape)
	}
	g := tp.GradOf(out)
	for i, v := range seed.Data {
		g.Data[i] += v
	}
	for i := len(tp.nodes) - 1; i >= 0; i-- {
		n := tp.nodes[i]
		if n.backward == nil {
			continue
		}
		reached := false
		for _, o := range n.Outputs {
			reached = reached || o.Grad != nil
		}
		if !reached {
			continue
		}
		n.backward()
		// The outputs' gradients are spent: recycle them at once so that
		// later (earlier-layer) gradients reuse the memory.
		for _, o := range n.Outputs {
			if o.Grad != nil && !o.retain && !o.leaf {
				tp.pool.Put(o.Grad.Data)
				o.Grad = nil
			}
		}
	}
	return nil
}

// Reset returns every buffer the tape handed out to its pool and forgets the
// record. Vars produced before Reset must not be used afterwards.
func (tp *Tape) Reset() {
	for _, n := range tp.nodes {
		for _, o := range n.Outputs {
			if o.Grad != nil && !o.leaf {
				tp.pool.Put(o.Grad.Data)
				o.Grad = nil
			}
		}
	}
	for _, b := range tp.owned {
		tp.pool.Put(b)
	}
	clear(tp.nodes)
	tp.nodes = tp.nodes[:0]
	clear(tp.owned)
	tp.owned = tp.owned[:0]
}
