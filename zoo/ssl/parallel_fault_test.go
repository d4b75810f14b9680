package ssl

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/data/augment"
	"github.com/sslzoo/sslzoo/dist"
)

var errInjected = errors.New("injected fault")

// failingData fails every Get after its first after ones.
type failingData struct {
	data.Dataset
	after int64
	n     atomic.Int64
}

func (f *failingData) Get(i int) (*augment.Image, int, error) {
	if f.n.Add(1) > f.after {
		return nil, 0, errInjected
	}
	return f.Dataset.Get(i)
}

// Issue 16's faults, on 2 goroutine ranks: a rank that fails ends the
// other's run too (it aborts the world), and ranks given different configs
// or data sizes both refuse to start. Neither rank may hang: each run must
// return within a minute, with an error that names the failure.
func TestDataParallelFaults(t *testing.T) {
	const disagree = "start every rank with the same flags and data"
	for _, tc := range []struct {
		name string
		// rank1 changes rank 1's config and data.
		rank1 func(c *TrainConfig, ds *data.Dataset)
		// want0 and want1 are in each rank's error.
		want0, want1 string
	}{
		{
			name: "data fails at step 2",
			// 4 images a rank a step: the third batch, step 2, fails.
			rank1: func(_ *TrainConfig, ds *data.Dataset) { *ds = &failingData{Dataset: *ds, after: 8} },
			want0: "step 2: dist: rank 0 of 2: rank 1 aborted: loader epoch 0: " + errInjected.Error(),
			want1: "loader epoch 0: " + errInjected.Error(),
		},
		{
			name:  "no data on rank 1",
			rank1: func(_ *TrainConfig, ds *data.Dataset) { *ds = nil },
			want0: "dist: rank 0 of 2: rank 1 aborted: squares: no dataset", want1: "squares: no dataset",
		},
		{
			name:  "bad config on rank 1",
			rank1: func(c *TrainConfig, _ *data.Dataset) { c.Epochs = 0 },
			want0: "rank 1 aborted: train config: 0 epochs", want1: "train config: 0 epochs",
		},
		{
			name:  "batch differs",
			rank1: func(c *TrainConfig, _ *data.Dataset) { c.Batch = 4 },
			want0: "ranks disagree on batch (rank 1 differs from rank 0): " + disagree,
			want1: "ranks disagree on batch (rank 1 differs from rank 0): " + disagree,
		},
		{
			name: "batch and data size differ",
			rank1: func(c *TrainConfig, ds *data.Dataset) {
				c.Batch = 4
				*ds = &failingData{Dataset: squares(40, 5), after: 1 << 40}
			},
			want0: "ranks disagree on batch, data size (rank 1 differs from rank 0): " + disagree,
			want1: "ranks disagree on batch, data size (rank 1 differs from rank 0): " + disagree,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			comms, err := dist.NewInProcess(2)
			if err != nil {
				t.Fatal(err)
			}
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for r := range 2 {
				cfg := tinyConfig(t, "simclr")
				cfg.Epochs, cfg.Workers, cfg.World = 50, 1, comms[r]
				// Both ranks' data is of a type ImageChannels does not know
				// (so both train on RGB); rank 0's never fails.
				var ds data.Dataset = &failingData{Dataset: squares(48, 5), after: 1 << 40}
				if r == 1 {
					tc.rank1(&cfg, &ds)
				}
				wg.Go(func() { _, errs[r] = Train(context.Background(), cfg, ds, TrainHooks{}) })
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				t.Fatal("a rank is still running a minute on")
			}
			for r, want := range []string{tc.want0, tc.want1} {
				if errs[r] == nil || !strings.Contains(errs[r].Error(), want) {
					t.Errorf("rank %d: %v, want an error with %q", r, errs[r], want)
				} else {
					t.Logf("rank %d: %v", r, errs[r])
				}
			}
		})
	}
}
