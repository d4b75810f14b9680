package bench

import (
	"math"
	"strings"
	"testing"
)

func TestModelTrainAndForward(t *testing.T) {
	for _, mode := range []string{"train", "forward"} {
		t.Run(mode, func(t *testing.T) {
			r, err := Model(ModelConfig{Arch: "resnet18-cifar", Mode: mode, Batch: 2, Steps: 2, Warmup: 1, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			if r.Mode != mode || r.Batch != 2 || r.Steps != 2 || !(r.ImagesPerSec > 0) || !(r.PeakRSSMiB > 0) || r.Conv == "" || r.BLAS == "" {
				t.Fatalf("implausible result %+v", r)
			}
			if mode == "train" {
				// Untrained 10-way classifier: the loss starts near ln 10 and
				// stays finite through three SGD steps.
				if math.Abs(r.FirstLoss-math.Log(10)) > 1.5 || math.IsNaN(r.LastLoss) || math.IsInf(r.LastLoss, 0) {
					t.Fatalf("losses %v -> %v", r.FirstLoss, r.LastLoss)
				}
			}
		})
	}
}

func TestModelRejectsBadConfig(t *testing.T) {
	cases := []struct {
		cfg  ModelConfig
		want string
	}{
		{ModelConfig{Arch: "resnet9000", Mode: "train", Batch: 1, Steps: 1}, "unknown architecture"},
		{ModelConfig{Arch: "bert-mini", Mode: "train", Batch: 1, Steps: 1}, "image classifiers"},
		{ModelConfig{Arch: "resnet18-cifar", Mode: "train", Batch: 0, Steps: 1}, "batch > 0"},
		{ModelConfig{Arch: "resnet18-cifar", Mode: "train", Batch: 1, Steps: 1, Warmup: -1}, "warmup >= 0"},
		{ModelConfig{Arch: "resnet18-cifar", Mode: "infer", Batch: 1, Steps: 1}, "want train or forward"},
	}
	for _, c := range cases {
		if _, err := Model(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err %v, want %q", c.cfg, err, c.want)
		}
	}
}
