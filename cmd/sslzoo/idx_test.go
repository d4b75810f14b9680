package main

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDecodeIDX(t *testing.T) {
	// 3 images of 2x2.
	file := []byte{0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2,
		1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	cases := []struct {
		name     string
		in       []byte
		limit    int
		wantDims []int
		wantLast byte
		wantErr  string
	}{
		{"all", file, 0, []int{3, 2, 2}, 12, ""},
		{"limit", file, 2, []int{2, 2, 2}, 8, ""},
		{"limit above count", file, 10, []int{3, 2, 2}, 12, ""},
		{"truncated", file[:20], 0, nil, 0, "IDX data"},
		{"bad magic", append([]byte{1}, file[1:]...), 0, nil, 0, "not an IDX"},
		{"float type", append([]byte{0, 0, 0x0d}, file[3:]...), 0, nil, 0, "element type"},
		{"empty", nil, 0, nil, 0, "header"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := decodeIDX(bytes.NewReader(c.in), c.limit)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got.dims) != len(c.wantDims) || got.dims[0] != c.wantDims[0] || got.data[len(got.data)-1] != c.wantLast {
				t.Fatalf("dims %v last %d, want %v last %d", got.dims, got.data[len(got.data)-1], c.wantDims, c.wantLast)
			}
		})
	}
}

func TestReadIDXGzip(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte{0, 0, 8, 1, 0, 0, 0, 4, 9, 8, 7, 6})
	zw.Close()
	p := filepath.Join(t.TempDir(), "labels-idx1-ubyte.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readIDX(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.data, []byte{9, 8, 7, 6}) || got.dims[0] != 4 {
		t.Fatalf("got %v %v", got.dims, got.data)
	}
	if _, err := readIDX(filepath.Join(t.TempDir(), "missing.gz"), 0); err == nil {
		t.Fatal("missing file accepted")
	}
}

// The real Fashion-MNIST files, when installed, have the documented shapes.
func TestReadFashionMNIST(t *testing.T) {
	dir := "/usr/share/datasets/fashion-mnist"
	if _, err := os.Stat(dir); err != nil {
		t.Skip("dataset-fashion-mnist not installed")
	}
	img, err := readIDX(filepath.Join(dir, "train-images-idx3-ubyte.gz"), 5)
	if err != nil {
		t.Fatal(err)
	}
	lab, err := readIDX(filepath.Join(dir, "train-labels-idx1-ubyte.gz"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(img.dims) != 3 || img.dims[0] != 5 || img.dims[1] != 28 || img.dims[2] != 28 || len(lab.data) != 60000 {
		t.Fatalf("images %v, %d labels", img.dims, len(lab.data))
	}
	// First training label of Fashion-MNIST is 9 (ankle boot).
	if lab.data[0] != 9 {
		t.Fatalf("first label %d, want 9", lab.data[0])
	}
}
