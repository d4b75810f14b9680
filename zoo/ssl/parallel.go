package ssl

import (
	"fmt"
	"slices"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/dist"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
)

// Data-parallel training: K ranks each run a method on 1/K of every global
// batch. The rule that keeps a K-rank run equal to a one-rank run with the
// same global batch is this: every rank's loss averages over its own rows,
// so that the mean of the ranks' losses is the global loss; every
// cross-rank dependency sums its gradient over the ranks (gatherRows,
// synchronised BatchNorm); and the parameter gradients are averaged
// (runStep). A loss that is a mean of per-image terms needs
// nothing else; a loss that compares images with each other gathers what
// it compares.

// dataParallel are the methods whose losses are written for several ranks:
// what each gathers is said in its Step's doc comment. The others refuse
// to start under mpirun rather than train on per-rank statistics.
var dataParallel = []string{"simclr", "mocov2", "mocov3", "byol", "mae", "barlow", "vicreg", "simsiam", "jigsaw", "dino", "swav", "colorization", "deepcluster", "deepclusterv2"}

// DataParallel reports whether the named method trains on several ranks.
func DataParallel(method string) bool { return slices.Contains(dataParallel, method) }

// world is the data-parallel side of a method's state (in parts): the
// communicator Train gives it, and the Reducer that averages gradients.
type world struct {
	comm    *dist.Comm
	reducer *dist.Reducer
}

// setWorld makes the method one of c's ranks; Train calls it before the
// first step.
func (w *world) setWorld(c *dist.Comm) {
	w.comm, w.reducer = c, dist.NewReducer(c, 0)
}

// ranks is (this rank, the world size); (0, 1) on one process.
func (w *world) ranks() (rank, size int) {
	if w.comm == nil {
		return 0, 1
	}
	return w.comm.Rank(), w.comm.Size()
}

// parallel reports whether there is more than one rank.
func (w *world) parallel() bool { return w.comm != nil && w.comm.Size() > 1 }

// meanLoss is the loss averaged over the ranks, so that every rank logs
// the global loss and stops together on a non-finite one.
func (w *world) meanLoss(loss float32) (float32, error) {
	if !w.parallel() {
		return loss, nil
	}
	buf := []float32{loss}
	if err := w.comm.AllreduceMean(buf); err != nil {
		return loss, err
	}
	return buf[0], nil
}

// averageGrads replaces the gradients of params by their mean over the
// ranks. Every rank must hold gradients for the same parameters; that is
// checked first (a count and a size, summed), since the Reducer would
// otherwise mix up tensors or wait forever.
func (w *world) averageGrads(params []nn.Param) error {
	if !w.parallel() {
		return nil
	}
	var grads [][]float32
	total := 0
	for _, p := range params {
		if g := p.Var.Grad; g != nil {
			grads = append(grads, g.Data)
			total += len(g.Data)
		}
	}
	k := float32(w.comm.Size())
	check := []float32{float32(len(grads)), float32(total)}
	if err := w.comm.AllreduceSum(check); err != nil {
		return err
	}
	if check[0] != k*float32(len(grads)) || check[1] != k*float32(total) {
		return fmt.Errorf("ranks hold gradients for different parameters (this rank %d tensors of %d floats, %g tensors in all over %g ranks)",
			len(grads), total, check[0], k)
	}
	return w.reducer.AllreduceMean(grads)
}

// fromRankZero copies rank 0's parameters and buffers into every rank's m,
// in one broadcast. Ranks built from the same seed (or checkpoint) already
// agree; this makes it so whatever a rank's initialisation did, as DDP
// does at its start.
func fromRankZero(c *dist.Comm, m nn.Module) error {
	if c == nil || c.Size() < 2 {
		return nil
	}
	s := &nn.State{}
	m.CollectState("", s)
	var ts [][]float32
	total := 0
	for _, p := range s.Params {
		ts = append(ts, p.Var.Value.Data)
		total += len(p.Var.Value.Data)
	}
	for _, b := range s.Buffers {
		if b.T != nil {
			ts = append(ts, b.T.Data)
			total += len(b.T.Data)
		}
	}
	flat := make([]float32, 0, total)
	for _, t := range ts {
		flat = append(flat, t...)
	}
	if err := c.Bcast(flat, 0); err != nil {
		return fmt.Errorf("copying rank 0's weights: %w", err)
	}
	for _, t := range ts {
		flat = flat[copy(t, flat):]
	}
	return nil
}

// gatherValues is every rank's rows of t [n, ...] stacked in rank order,
// with no gradient: t itself on one rank. op names the caller in errors.
func (w *world) gatherValues(op string, t *tensor.Tensor) *tensor.Tensor {
	if !w.parallel() {
		return t
	}
	all, err := w.comm.Allgather(t.Data)
	if err != nil {
		autograd.Failf(op, "gathering over ranks: %v", err)
	}
	return tensor.FromSlice(all, append([]int{w.comm.Size() * t.Shape[0]}, t.Shape[1:]...)...)
}

// gatherRows is every rank's x [n, ...] stacked in rank order, [K*n, ...].
// Its gradient is summed over the ranks and rank r keeps the rows it
// contributed: each rank's loss may use every rank's rows, and the rows'
// owners receive all of it. (Averaging instead of summing, or keeping only
// the local loss's share, is the known mistake of gathering with
// gradients.) On one rank it is x itself.
func gatherRows(tp *autograd.Tape, x *autograd.Var, w *world) *autograd.Var {
	if !w.parallel() {
		return x
	}
	c := w.comm
	all, err := c.Allgather(x.Value.Data)
	if err != nil {
		autograd.Failf("AllGather", "%v", err)
	}
	shape := append([]int{c.Size() * x.Shape()[0]}, x.Shape()[1:]...)
	out := tp.Alloc(shape...)
	copy(out.Data, all)
	return tp.Record("AllGather", nil, out, []*autograd.Var{x}, func(o *autograd.Var) {
		g := slices.Clone(o.Grad.Data)
		if err := c.AllreduceSum(g); err != nil {
			autograd.Failf("AllGather", "summing the gradient over ranks: %v", err)
		}
		if gx := tp.GradOf(x); gx != nil {
			n := len(gx.Data)
			own := g[c.Rank()*n : (c.Rank()+1)*n]
			for i, v := range own {
				gx.Data[i] += v
			}
		}
	})
}
