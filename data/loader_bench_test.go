package data

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/sslzoo/sslzoo/data/augment"
)

// BenchmarkLoaderFashionMNISTSimCLR measures the loader's throughput on the
// Fashion-MNIST train split with the SimCLR pipeline at 32x32 (two views,
// strength 0.5, blur on), batch 256, all cores: the number to compare with
// the trainer's images/s. It reports samples/s (each sample gives 2 views)
// and is not a timed assertion. workers=1 gives the cost per core.
//
//	go test ./data -run '^$' -bench LoaderFashionMNISTSimCLR -benchtime 5x
func BenchmarkLoaderFashionMNISTSimCLR(b *testing.B) {
	if _, err := os.Stat(FashionMNISTDir); err != nil && os.Getenv(EnvFashionMNISTDir) == "" {
		b.Skipf("Fashion-MNIST not installed: %v", err)
	}
	ds, err := LoadFashionMNIST("", true)
	if err != nil {
		b.Fatal(err)
	}
	const batches = 40 // 10240 samples per iteration
	for _, workers := range []int{1, runtime.GOMAXPROCS(0)} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			l, err := NewLoader(ds, LoaderConfig{BatchSize: 256, Shuffle: true, Seed: 1, Workers: workers,
				Views: augment.SimCLR(32, 0.5, true, augment.FashionMNISTNorm)})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			samples := 0
			start := time.Now()
			for i := 0; i < b.N; i++ {
				it := l.Epoch(context.Background(), i)
				for range batches {
					bt, err := it.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					samples += len(bt.Indices)
					bt.Release()
				}
				it.Close()
			}
			b.ReportMetric(float64(samples)/time.Since(start).Seconds(), "samples/s")
		})
	}
}

// BenchmarkSimCLRPipeline is the per-sample cost of the same pipeline on
// one goroutine (decode excluded), for profiling the augmentations.
func BenchmarkSimCLRPipeline(b *testing.B) {
	views := augment.SimCLR(32, 0.5, true, augment.FashionMNISTNorm)
	ds := synthetic(64, 1, 28, 28)
	l, _ := NewLoader(ds, LoaderConfig{BatchSize: 1})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		img, _, _ := ds.Get(i % 64)
		rng := l.SampleRNG(0, i)
		if _, err := views[0].Apply(img, rng); err != nil {
			b.Fatal(err)
		}
	}
}
