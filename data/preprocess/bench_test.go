package preprocess

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/sslzoo/sslzoo/internal/npy"
)

// fashionMNIST is where Debian's dataset-fashion-mnist puts the test set.
const fashionMNIST = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"

// benchImages returns n 28x28 grey images: Fashion-MNIST's test set when it
// is installed, else a synthetic stand-in (said in the log).
func benchImages(b *testing.B, n int) [][]byte {
	if f, err := os.Open(fashionMNIST); err == nil {
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			b.Fatal(err)
		}
		raw, err := io.ReadAll(zr)
		if err != nil || len(raw) < 16+n*784 {
			b.Fatalf("%s: %v (%d bytes)", fashionMNIST, err, len(raw))
		}
		out := make([][]byte, n)
		for i := range out {
			out[i] = raw[16+i*784 : 16+(i+1)*784]
		}
		return out
	}
	b.Logf("%s not found: synthetic images", fashionMNIST)
	out := make([][]byte, n)
	for i := range out {
		out[i] = make([]byte, 784)
		for j := range out[i] {
			if (j/28-14)*(j/28-14)+(j%28-14)*(j%28-14) < 100+i%50 {
				out[i][j] = uint8(100 + (i*j)%150)
			}
		}
	}
	return out
}

// BenchmarkFiles reads 10,000 28x28 grey PNGs (Fashion-MNIST) through Files
// and, interleaved with it, the same images already preprocessed in one
// .npy file, the input `sslzoo embed` takes otherwise. It reports both
// rates and their ratio.
func BenchmarkFiles(b *testing.B) {
	const n = 10000
	dir := b.TempDir()
	imgs := benchImages(b, n)
	paths := make([]string, n)
	for i, pix := range imgs {
		m := &image.Gray{Pix: pix, Stride: 28, Rect: image.Rect(0, 0, 28, 28)}
		var buf bytes.Buffer
		if err := png.Encode(&buf, m); err != nil {
			b.Fatal(err)
		}
		paths[i] = filepath.Join(dir, fmt.Sprintf("%05d.png", i))
		if err := os.WriteFile(paths[i], buf.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	spec := Spec{Channels: L, Size: [2]int{28, 28}, Crop: "none", Scale: 1.0 / 255,
		Mean: []float64{0.2860}, Std: []float64{0.3530}}
	all := make([]float32, 0, n*spec.Len())
	for batch, err := range Files(context.Background(), paths, spec, Options{}) {
		if err != nil {
			b.Fatal(err)
		}
		all = append(all, batch.Data...)
	}
	npyPath := filepath.Join(dir, "all.npy")
	if err := npy.WriteFile(npyPath, &npy.Array{DType: npy.Float32, Shape: []int{n, 1, 28, 28}, Data: all}); err != nil {
		b.Fatal(err)
	}
	for _, workers := range []int{1, runtime.GOMAXPROCS(0)} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			var ours, peer time.Duration
			images := 0
			for b.Loop() {
				t0 := time.Now()
				for _, err := range Files(context.Background(), paths, spec, Options{Workers: workers, BatchSize: 256}) {
					if err != nil {
						b.Fatal(err)
					}
				}
				t1 := time.Now()
				a, err := npy.ReadFile(npyPath)
				if err != nil || a.Len() != len(all) {
					b.Fatal(err)
				}
				peer += time.Since(t1)
				ours += t1.Sub(t0)
				images += n
			}
			b.ReportMetric(float64(images)/ours.Seconds(), "images/s")
			b.ReportMetric(float64(images)/peer.Seconds(), "npy-images/s")
			b.ReportMetric(peer.Seconds()/ours.Seconds(), "ratio")
		})
	}
}
