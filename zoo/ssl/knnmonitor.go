package ssl

import (
	"context"
	"math/rand/v2"

	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/data/augment"
	"github.com/sslzoo/sslzoo/eval"
)

// knnMonitor holds the fixed bank and query subsets of a run's monitor.
type knnMonitor struct {
	bank, query data.Dataset
	cfg         eval.ExtractConfig
}

// newKNNMonitor picks the subsets from the run's seed, so a resumed run
// monitors on the same images.
func newKNNMonitor(train data.Dataset, tf augment.Transform, c TrainConfig) *knnMonitor {
	pick := func(ds data.Dataset, n int, seed uint64) data.Dataset {
		if n >= ds.Len() {
			return ds
		}
		perm := rand.New(rand.NewPCG(seed, 0x6b6e6e)).Perm(ds.Len())[:n]
		return &data.Subset{Base: ds, Indices: perm}
	}
	return &knnMonitor{bank: pick(train, c.KNN.Bank, c.Seed), query: pick(c.KNN.Test, c.KNN.Query, c.Seed+1),
		cfg: eval.ExtractConfig{Transform: tf, Workers: c.Workers, Warn: c.Warn}}
}

func (k *knnMonitor) run(ctx context.Context, enc Encoder) (eval.Result, error) {
	bank, err := eval.Extract(ctx, enc, k.bank, k.cfg)
	if err != nil {
		return eval.Result{}, err
	}
	query, err := eval.Extract(ctx, enc, k.query, k.cfg)
	if err != nil {
		return eval.Result{}, err
	}
	return eval.KNN(bank, query, eval.DefaultKNN())
}
