package autograd

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/sslzoo/sslzoo/dist"
	"github.com/sslzoo/sslzoo/tensor"
)

// A batch split across replicas with synchronised BatchNorm gives what the
// whole batch gives on one tape: outputs and input gradients row for row,
// the replicas' weight and bias gradients summed, and running statistics
// on every replica. Shapes cover one and two channels-per-rank layouts, and
// replicas with unequal shares of the batch.
func TestBatchNormCrossReplica(t *testing.T) {
	cases := []struct {
		name  string
		shape []int
		split []int // rows per replica
	}{
		{"2d two replicas", []int{8, 3, 4, 4}, []int{4, 4}},
		{"1d three replicas", []int{9, 5}, []int{3, 3, 3}},
		{"uneven", []int{7, 2, 3, 3}, []int{2, 5}},
		{"large spatial", []int{4, 2, 96, 96}, []int{2, 2}}, // channel-by-channel path of the unsynchronised op
	}
	for ci, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(ci), 7))
			ch := c.shape[1]
			x := convTestRand(rng, c.shape...)
			for i := range x.Data {
				x.Data[i] = 3 + 2*x.Data[i] // a mean far from 0
			}
			seed := convTestRand(rng, c.shape...)
			w, b := convTestRand(rng, ch), convTestRand(rng, ch)
			rm, rv := convTestRand(rng, ch), tensor.New(ch)
			for j := range rv.Data {
				rv.Data[j] = 0.5 + rng.Float32()
			}
			type result struct{ y, dx, dw, db, rm, rv *tensor.Tensor }
			run := func(tp *Tape, x, seed *tensor.Tensor) result {
				wv, bv := NewParam("w", w.Clone()), NewParam("b", b.Clone())
				xv := NewParam("x", x)
				m, v := rm.Clone(), rv.Clone()
				y := tp.BatchNorm(xv, wv, bv, m, v, true, 0.1, 1e-5)
				if err := tp.BackwardWith(y, seed); err != nil {
					t.Error(err)
				}
				return result{y.Value.Clone(), xv.Grad, wv.Grad, bv.Grad, m, v}
			}
			whole := run(NewTape(), x, seed)

			comms, err := dist.NewInProcess(len(c.split))
			if err != nil {
				t.Fatal(err)
			}
			per := x.Numel() / c.shape[0]
			parts := make([]result, len(c.split))
			var wg sync.WaitGroup
			lo := 0
			for r, rows := range c.split {
				shape := append([]int{rows}, c.shape[1:]...)
				xs := tensor.FromSlice(append([]float32(nil), x.Data[lo*per:(lo+rows)*per]...), shape...)
				ss := tensor.FromSlice(append([]float32(nil), seed.Data[lo*per:(lo+rows)*per]...), shape...)
				lo += rows
				wg.Add(1)
				go func() {
					defer wg.Done()
					tp := NewTape()
					tp.SetCrossReplicaSum(comms[r].AllreduceSum)
					parts[r] = run(tp, xs, ss)
				}()
			}
			wg.Wait()

			near := func(what string, got, want []float32) {
				t.Helper()
				for i := range want {
					if d := math.Abs(float64(got[i] - want[i])); d > 2e-5*(1+math.Abs(float64(want[i]))) {
						t.Fatalf("%s[%d] = %g, whole batch %g", what, i, got[i], want[i])
					}
				}
			}
			var y, dx []float32
			dw, db := make([]float32, ch), make([]float32, ch)
			for _, p := range parts {
				y, dx = append(y, p.y.Data...), append(dx, p.dx.Data...)
				for j := range ch {
					dw[j] += p.dw.Data[j]
					db[j] += p.db.Data[j]
				}
				near("running mean", p.rm.Data, whole.rm.Data)
				near("running var", p.rv.Data, whole.rv.Data)
			}
			near("y", y, whole.y.Data)
			near("dx", dx, whole.dx.Data)
			near("dweight", dw, whole.dw.Data)
			near("dbias", db, whole.db.Data)
		})
	}
}
