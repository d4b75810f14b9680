package onnxrt

import (
	"fmt"
	"slices"
	"time"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/tensor"
)

// The Go engine runs a compiled plan, not the graph as loaded. compile, at
// load time:
//   - folds every node whose inputs are all constants into a constant, so
//     weight transposes and shape arithmetic run once rather than per Run;
//   - fuses the patterns in fuse.go (BatchNormalization into the Conv
//     before it, Relu into the op before it, the erf form of GELU, and a
//     Transpose of the last two axes into the MatMul after it);
//   - numbers every value with a slot and records, for each step, which
//     slots it reads last, so that Run hands their buffers back to the
//     pool as soon as they die and later steps reuse them.

// planStep is one node to run.
type planStep struct {
	node *gnode
	in   []int // a slot per input; -1 for an absent optional input
	out  []int // a slot per output; -1 for an unused one
	dead []int // slots whose last reader is this step
}

// plan is a compiled graph.
type plan struct {
	steps   []planStep
	consts  []*gval // per slot: the constant's value, or nil
	inputs  []int   // slot of each graph input, in Inputs order
	outputs []int   // slot of each graph output, in Outputs order
	convs   int     // Conv nodes: oneDNN primitives on OpenMP threads
}

// compile builds the plan for nodes (in graph order), whose constant
// values are inits.
func compile(nodes []*gnode, inits map[string]*gval, info *ModelInfo, opset int64) (*plan, error) {
	consts := make(map[string]*gval, len(inits))
	for k, v := range inits {
		consts[k] = v
	}
	outputs := map[string]bool{}
	for _, v := range info.Outputs {
		outputs[v.Name] = true
	}
	nodes = foldConstants(nodes, consts, opset)
	nodes = fuse(nodes, consts, outputs, opset)

	p := &plan{}
	slot := map[string]int{}
	slotOf := func(name string) int {
		if s, ok := slot[name]; ok {
			return s
		}
		s := len(p.consts)
		slot[name] = s
		p.consts = append(p.consts, consts[name])
		return s
	}
	for _, v := range info.Inputs {
		p.inputs = append(p.inputs, slotOf(v.Name))
	}
	lastRead := map[int]int{} // slot -> index of the step that reads it last
	for i, n := range nodes {
		if n.op == "Conv" {
			p.convs++
		}
		st := planStep{node: n, in: make([]int, len(n.in)), out: make([]int, len(n.out))}
		for j, name := range n.in {
			st.in[j] = -1
			if name == "" {
				continue
			}
			s, ok := slot[name]
			if !ok {
				if _, isConst := consts[name]; !isConst {
					return nil, fmt.Errorf("%s node %s: input %q is not defined before use", n.op, n.name, name)
				}
				s = slotOf(name)
			}
			st.in[j] = s
			lastRead[s] = i
		}
		for j, name := range n.out {
			st.out[j] = -1
			if name != "" {
				st.out[j] = slotOf(name)
			}
		}
		p.steps = append(p.steps, st)
	}
	for _, v := range info.Outputs {
		s, ok := slot[v.Name]
		if !ok {
			if _, isConst := consts[v.Name]; !isConst {
				return nil, fmt.Errorf("output %s is never computed", shownName(v.Name))
			}
			s = slotOf(v.Name)
		}
		p.outputs = append(p.outputs, s)
		delete(lastRead, s) // outputs live to the end
	}
	for s, i := range lastRead {
		if p.consts[s] == nil {
			p.steps[i].dead = append(p.steps[i].dead, s)
		}
	}
	return p, nil
}

// foldConstants runs, once, every node whose inputs are all constants, and
// records its outputs in consts. It returns the nodes left to run. A node
// that fails here is kept, so that Run reports the failure where it always
// did.
func foldConstants(nodes []*gnode, consts map[string]*gval, opset int64) []*gnode {
	var kept []*gnode
	// The folding tape is never Reset: its buffers become the constants.
	c := &gctx{tp: autograd.NewTape(), opset: opset}
	for _, n := range nodes {
		in, ok := constInputs(n, consts)
		if !ok {
			kept = append(kept, n)
			continue
		}
		var res []*gval
		var runErr error
		err := autograd.Catch(func() {
			c.tp.NoGrad(func() { res, runErr = n.impl.run(c, n, in) })
		})
		if err != nil || runErr != nil || len(res) < countNamed(n.out) {
			kept = append(kept, n)
			continue
		}
		n.wrapNarrow(res)
		for j, name := range n.out {
			if name != "" {
				consts[name] = res[j]
			}
		}
	}
	return kept
}

// constInputs gathers a node's inputs when every one present is a
// constant.
func constInputs(n *gnode, consts map[string]*gval) ([]*gval, bool) {
	in := make([]*gval, len(n.in))
	for j, name := range n.in {
		if name == "" {
			continue
		}
		v, ok := consts[name]
		if !ok {
			return nil, false
		}
		in[j] = v
	}
	return in, true
}

func countNamed(names []string) int {
	n := 0
	for i, s := range names {
		if s != "" {
			n = i + 1
		}
	}
	return n
}

// run executes the plan on tape c.tp with vals holding the inputs in their
// slots; it fills the output slots. A buffer goes back to the pool when the
// last value sharing it dies (views such as Reshape share their source's
// buffer). c.current is the node running, so that a failure (an error or
// a kernel's panic) can name it.
func (p *plan) run(c *gctx, vals []*gval) error {
	refs := map[uintptr]int{} // live values per buffer
	hold := func(v *gval) {
		if v != nil && v.f != nil {
			refs[tensor.BufferID(v.f.Data)]++
		}
	}
	for _, s := range p.inputs {
		hold(vals[s])
	}
	release := func(v *gval) {
		if v == nil || v.f == nil {
			return
		}
		id := tensor.BufferID(v.f.Data)
		if refs[id]--; refs[id] == 0 {
			delete(refs, id)
			c.tp.Recycle(v.f.Data)
		}
	}
	// relayout replaces the NHWC value in slot s by its NCHW form, for
	// this reader and every later one.
	relayout := func(s int) {
		old := vals[s]
		vals[s] = toNCHW(c, old)
		hold(vals[s])
		release(old)
	}
	in := make([]*gval, 0, 8)
	for i := range p.steps {
		st := &p.steps[i]
		n := st.node
		c.current = n
		in = in[:0]
		for _, s := range st.in {
			if s < 0 {
				in = append(in, nil)
				continue
			}
			v := vals[s]
			if v == nil {
				return fmt.Errorf("input %q is not computed before use", n.in[len(in)])
			}
			in = append(in, v)
		}
		if hasNHWC(in) && (n.impl.nhwc == nil || !n.impl.nhwc(in)) {
			for j, s := range st.in {
				if s >= 0 && vals[s].nhwc {
					relayout(s)
				}
				if s >= 0 {
					in[j] = vals[s]
				}
			}
		}
		c.dying = st.dying(c, in, refs, c.dying)
		var start time.Time
		if c.prof != nil {
			start = time.Now()
		}
		res, err := n.impl.run(c, n, in)
		if err != nil {
			return err
		}
		if c.prof != nil {
			c.prof.add(n.op, time.Since(start))
		}
		n.wrapNarrow(res)
		for j, s := range st.out {
			if s >= 0 && j < len(res) {
				vals[s] = res[j]
				hold(res[j])
			}
		}
		for _, s := range st.dead {
			v := vals[s]
			vals[s] = nil
			release(v)
		}
	}
	for _, s := range p.outputs {
		if vals[s] != nil && vals[s].nhwc {
			relayout(s)
		}
	}
	c.current = nil
	return nil
}

func hasNHWC(in []*gval) bool {
	for _, v := range in {
		if v != nil && v.nhwc {
			return true
		}
	}
	return false
}

// dying fills buf with, per input, whether this step is the last reader
// of its buffer (no other live value shares it, and no other input of the
// step is the same value) and the tape owns it.
func (st *planStep) dying(c *gctx, in []*gval, refs map[uintptr]int, buf []bool) []bool {
	buf = buf[:0]
	for j, s := range st.in {
		d := s >= 0 && in[j].f != nil && slices.Contains(st.dead, s) &&
			refs[tensor.BufferID(in[j].f.Data)] == 1 && c.tp.Owns(in[j].f.Data)
		for k, o := range st.in {
			if k != j && o == s {
				d = false
			}
		}
		buf = append(buf, d)
	}
	return buf
}
