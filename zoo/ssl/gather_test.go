package ssl

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/dist"
	"github.com/sslzoo/sslzoo/tensor"
)

// testdata/gather_golden.json comes from scripts/gen_gather_golden.py
// (PyTorch, float64 from float32 inputs, with the semantics of
// torch.distributed.nn.all_gather, checked there on two gloo processes).
// Go's float32 values must be within gatherTol of the golden's largest
// absolute value in the same tensor (losses: of the loss itself).
const gatherTol = 1e-5

type gatherGolden struct {
	K           int     `json:"k"`
	N           int     `json:"n"`
	D           int     `json:"d"`
	Temperature float64 `json:"temperature"`
	Ranks       []struct {
		Z1, Z2      goldenTensor
		Loss        float64
		GradZ1      goldenTensor `json:"grad_z1"`
		GradZ2      goldenTensor `json:"grad_z2"`
		WrongGradZ1 goldenTensor `json:"wrong_grad_z1"`
		WrongGradZ2 goldenTensor `json:"wrong_grad_z2"`
	} `json:"ranks"`
	MeanLoss float64 `json:"mean_loss"`
	Whole    struct {
		Z1, Z2 goldenTensor
		Loss   float64
		GradZ1 goldenTensor `json:"grad_z1"`
		GradZ2 goldenTensor `json:"grad_z2"`
	} `json:"whole"`
}

// relMaxDiff is max |got - want| over the largest |want|.
func relMaxDiff(got []float32, want []float64) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var d, m float64
	for i, w := range want {
		g := float64(got[i])
		if math.IsNaN(g) {
			return math.Inf(1)
		}
		d = math.Max(d, math.Abs(g-w))
		m = math.Max(m, math.Abs(w))
	}
	return d / m
}

// gatherRank is one rank's result: its loss and the gradients of its two
// views' embeddings.
type gatherRank struct {
	loss     float32
	gz1, gz2 []float32
	err      error
}

// simclrLoss runs what SimCLR's Step does after the projector on one rank:
// both views' embeddings as one [2n, d] Var, sliced into the views, ntXent
// through gatherRows, Backward (whose AllGather sums over the ranks).
func simclrLoss(z1, z2 *tensor.Tensor, tau float32, w *world) (res gatherRank) {
	n := z1.Shape[0]
	tp := autograd.NewTape()
	both := tensor.New(2*n, z1.Shape[1])
	copy(both.Data, z1.Data)
	copy(both.Data[len(z1.Data):], z2.Data)
	z := autograd.NewParam("z", both)
	res.err = autograd.Catch(func() {
		loss := ntXent(tp, tp.Slice(z, 0, 0, n), tp.Slice(z, 0, n, 2*n), tau, w)
		res.loss = loss.Value.Data[0]
		if err := tp.Backward(loss); err != nil {
			panic(err)
		}
	})
	if res.err == nil && z.Grad == nil {
		res.err = fmt.Errorf("no gradient reached the embeddings")
	}
	if res.err == nil {
		half := n * z1.Shape[1]
		res.gz1, res.gz2 = z.Grad.Data[:half], z.Grad.Data[half:]
	}
	return res
}

// Two in-process ranks each take SimCLR's NT-Xent of their own rows against
// the gathered rows of both and backpropagate their own loss; each rank's
// loss and input gradients (the sum over both ranks' losses, what
// torch.distributed.nn.all_gather's reduce-scatter gives) match PyTorch,
// and are far from the gradient of keeping only the local loss's share
// (lightly-ai/lightly issue 1528). The whole batch on one rank has the mean
// of the two losses and 1/K of the per-rank gradients.
func TestGatherRowsMatchesTorch(t *testing.T) {
	raw, err := os.ReadFile("testdata/gather_golden.json")
	if err != nil {
		t.Fatalf("read golden (regenerate with /usr/bin/python3 scripts/gen_gather_golden.py): %v", err)
	}
	var g gatherGolden
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatalf("parse golden: %v", err)
	}
	if g.K != 2 || len(g.Ranks) != g.K {
		t.Fatalf("golden has k=%d and %d ranks, want 2", g.K, len(g.Ranks))
	}
	tau := float32(g.Temperature)
	comms, err := dist.NewInProcess(g.K)
	if err != nil {
		t.Fatal(err)
	}
	res := make([]gatherRank, g.K)
	var wg sync.WaitGroup
	for r := range g.K {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &world{}
			w.setWorld(comms[r])
			res[r] = simclrLoss(g.Ranks[r].Z1.tensor(), g.Ranks[r].Z2.tensor(), tau, w)
		}()
	}
	// A rank that fails before a collective leaves the other waiting in it.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the ranks did not finish in 30 s (a collective left waiting?)")
	}

	var worstLoss, worstGrad float64
	for r, got := range res {
		if got.err != nil {
			t.Fatalf("rank %d: %v", r, got.err)
		}
		want := g.Ranks[r]
		dl := math.Abs(float64(got.loss)-want.Loss) / math.Abs(want.Loss)
		worstLoss = math.Max(worstLoss, dl)
		if dl > gatherTol {
			t.Errorf("rank %d loss %.8g, want %.8g (PyTorch)", r, got.loss, want.Loss)
		}
		for _, c := range []struct {
			name        string
			got         []float32
			want, wrong goldenTensor
		}{{"z1", got.gz1, want.GradZ1, want.WrongGradZ1}, {"z2", got.gz2, want.GradZ2, want.WrongGradZ2}} {
			d := relMaxDiff(c.got, c.want.Data)
			worstGrad = math.Max(worstGrad, d)
			if d > gatherTol {
				t.Errorf("rank %d gradient of %s: off by %.3g of its largest value (limit %g)", r, c.name, d, gatherTol)
			}
			// The known mistake's gradient is far from ours: the test can
			// tell them apart.
			if off := relMaxDiff(c.got, c.wrong.Data); off < 1e-2 {
				t.Errorf("rank %d gradient of %s is within %.3g of the local-share-only gradient", r, c.name, off)
			} else {
				t.Logf("rank %d %s: the local-share-only gradient is off by %.3g of the largest value", r, c.name, off)
			}
		}
	}
	t.Logf("2 ranks against PyTorch: losses within %.2g relative, gradients within %.2g of the largest value", worstLoss, worstGrad)

	// One rank, the whole batch: the mean of the ranks' losses, and rank
	// r's gradient is K times the whole-batch gradient of its rows (so
	// averaging parameter gradients over the ranks gives the whole-batch
	// gradient).
	whole := simclrLoss(g.Whole.Z1.tensor(), g.Whole.Z2.tensor(), tau, &world{})
	if whole.err != nil {
		t.Fatal(whole.err)
	}
	if d := math.Abs(float64(whole.loss)-g.Whole.Loss) / g.Whole.Loss; d > gatherTol {
		t.Errorf("whole-batch loss %.8g, want %.8g", whole.loss, g.Whole.Loss)
	}
	if d := math.Abs(float64(whole.loss)-float64(res[0].loss+res[1].loss)/2) / g.Whole.Loss; d > gatherTol {
		t.Errorf("whole-batch loss %.8g is not the mean of the ranks' %.8g and %.8g", whole.loss, res[0].loss, res[1].loss)
	}
	var worstWhole, worstRel float64
	for _, c := range []struct {
		name string
		got  []float32
		want goldenTensor
		rank func(r int) []float32
	}{{"z1", whole.gz1, g.Whole.GradZ1, func(r int) []float32 { return res[r].gz1 }},
		{"z2", whole.gz2, g.Whole.GradZ2, func(r int) []float32 { return res[r].gz2 }}} {
		d := relMaxDiff(c.got, c.want.Data)
		worstWhole = math.Max(worstWhole, d)
		if d > gatherTol {
			t.Errorf("whole-batch gradient of %s: off by %.3g of its largest value", c.name, d)
		}
		rows := g.N * g.D
		for r := range g.K {
			scaled := make([]float64, rows)
			for i, v := range c.got[r*rows : (r+1)*rows] {
				scaled[i] = float64(g.K) * float64(v)
			}
			d := relMaxDiff(c.rank(r), scaled)
			worstRel = math.Max(worstRel, d)
			if d > gatherTol {
				t.Errorf("rank %d gradient of %s is not %d times the whole batch's: off by %.3g", r, c.name, g.K, d)
			}
		}
	}
	t.Logf("whole batch against PyTorch within %.2g; rank gradients against K times the whole batch's within %.2g", worstWhole, worstRel)
}
