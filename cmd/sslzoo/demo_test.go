package main

import (
	"bytes"
	"compress/gzip"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeIDXGz writes a gzip-compressed unsigned-byte IDX file.
func writeIDXGz(t *testing.T, path string, dims []int, data []byte) {
	t.Helper()
	var raw bytes.Buffer
	raw.Write([]byte{0, 0, 8, byte(len(dims))})
	for _, d := range dims {
		raw.Write([]byte{byte(d >> 24), byte(d >> 16), byte(d >> 8), byte(d)})
	}
	raw.Write(data)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw.Bytes())
	zw.Close()
	if err := os.WriteFile(path, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeFashion writes n 28x28 images whose pixel (r,c) is (i*31+r*7+c)%256
// and labels i%10, in the layout of Debian's dataset-fashion-mnist.
func fakeFashion(t *testing.T, n int) string {
	dir := t.TempDir()
	img := make([]byte, n*28*28)
	for i := range n {
		for r := range 28 {
			for c := range 28 {
				img[i*784+r*28+c] = byte((i*31 + r*7 + c) % 256)
			}
		}
	}
	lab := make([]byte, n)
	for i := range lab {
		lab[i] = byte(i % 10)
	}
	writeIDXGz(t, filepath.Join(dir, "train-images-idx3-ubyte.gz"), []int{n, 28, 28}, img)
	writeIDXGz(t, filepath.Join(dir, "train-labels-idx1-ubyte.gz"), []int{n}, lab)
	return dir
}

func TestLoadFashionBatch(t *testing.T) {
	dir := fakeFashion(t, 5)
	x, labels, err := loadFashionBatch(dir, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(x.Shape) != 4 || x.Shape[0] != 3 || x.Shape[1] != 1 || x.Shape[2] != 32 || x.Shape[3] != 32 {
		t.Fatalf("shape %v", x.Shape)
	}
	if labels[0] != 0 || labels[2] != 2 || len(labels) != 3 {
		t.Fatalf("labels %v", labels)
	}
	norm := func(p int) float32 { return (float32(p)/255 - fashionMean) / fashionStd }
	at := func(b, r, c int) float32 { return x.Data[b*1024+r*32+c] }
	checks := []struct {
		b, r, c int
		want    float32
	}{
		{0, 0, 0, norm(0)},                   // padding is the background value
		{2, 31, 31, norm(0)},                 // far corner padding
		{0, 2, 2, norm(0)},                   // first real pixel of image 0
		{1, 2 + 3, 2 + 4, norm(31 + 21 + 4)}, // image 1, row 3, col 4
		{2, 29, 29, norm((62 + 27*7 + 27) % 256)},
	}
	for _, c := range checks {
		if got := at(c.b, c.r, c.c); math.Abs(float64(got-c.want)) > 1e-6 {
			t.Errorf("x[%d,0,%d,%d] = %v, want %v", c.b, c.r, c.c, got, c.want)
		}
	}
	if _, _, err := loadFashionBatch(dir, 6); err == nil || !strings.Contains(err.Error(), "asked for 6") {
		t.Fatalf("asking for more images than exist: err %v", err)
	}
	if _, _, err := loadFashionBatch(t.TempDir(), 1); err == nil {
		t.Fatal("empty folder accepted")
	}
}

// A narrow ResNet-18 overfits a small batch: the loss must fall.
func TestDemoLossFalls(t *testing.T) {
	var out bytes.Buffer
	err := demo(&out, demoConfig{Data: fakeFashion(t, 8), Batch: 8, Steps: 4, LR: 0.05, Seed: 1, Width: 0.25})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if strings.Count(out.String(), "loss ") < 5 || !strings.Contains(out.String(), "step  4/4") {
		t.Fatalf("output:\n%s", out.String())
	}
}

func TestDemoFlags(t *testing.T) {
	code, _, errs := runCLI("demo", "--steps", "1")
	if code == 0 || !strings.Contains(errs, "--steps >= 2") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	code, _, errs = runCLI("demo", "--data", t.TempDir(), "--steps", "2", "--batch", "1")
	if code == 0 || !strings.Contains(errs, "fashion-mnist") || strings.Count(errs, "\n") != 1 {
		t.Fatalf("missing data: exit %d, stderr %q", code, errs)
	}
}
