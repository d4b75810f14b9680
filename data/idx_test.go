package data

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// idxBytes builds an unsigned-byte IDX file of the given dims.
func idxBytes(dims []int, fill func(i int) byte) []byte {
	var b bytes.Buffer
	b.Write([]byte{0, 0, IDXUint8, byte(len(dims))})
	n := 1
	for _, d := range dims {
		binary.Write(&b, binary.BigEndian, uint32(d))
		n *= d
	}
	for i := 0; i < n; i++ {
		b.WriteByte(fill(i))
	}
	return b.Bytes()
}

func gz(b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadIDXRawAndGzip(t *testing.T) {
	dir := t.TempDir()
	raw := idxBytes([]int{3, 2, 4}, func(i int) byte { return byte(i * 7) })
	for _, p := range []string{writeFile(t, dir, "a.idx", raw), writeFile(t, dir, "a.idx.gz", gz(raw)), writeFile(t, dir, "gz-without-suffix", gz(raw))} {
		x, err := ReadIDX(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if len(x.Dims) != 3 || x.Dims[0] != 3 || x.Dims[1] != 2 || x.Dims[2] != 4 || len(x.Data) != 24 || x.Data[5] != 35 {
			t.Fatalf("%s: dims %v data %v", p, x.Dims, x.Data)
		}
	}
	// Other element types: int16 big-endian, float32.
	var b bytes.Buffer
	b.Write([]byte{0, 0, IDXInt16, 1, 0, 0, 0, 2, 0xff, 0xfe, 0x01, 0x00})
	x, err := DecodeIDX(&b, "mem")
	if err != nil {
		t.Fatal(err)
	}
	if f := x.Float64s(); f[0] != -2 || f[1] != 256 {
		t.Fatalf("int16 values %v", f)
	}
	if _, err := x.Uint8(); err == nil {
		t.Fatal("Uint8 on an int16 file: no error")
	}
}

func TestReadIDXErrorsNameFileAndOffset(t *testing.T) {
	dir := t.TempDir()
	good := idxBytes([]int{4, 3, 3}, func(i int) byte { return byte(i) })
	badGzip := gz(good)
	badGzip[len(badGzip)-6] ^= 0xff // CRC-32 in the trailer
	for _, tc := range []struct {
		name string
		data []byte
		want []string
	}{
		{"truncated.idx", good[:30], []string{"truncated.idx", "byte offset 30", "14 of 36 bytes", "unexpected EOF"}},
		{"truncated.idx.gz", gz(good[:30]), []string{"truncated.idx.gz", "byte offset 30 of the decompressed data", "unexpected EOF"}},
		{"header.idx", good[:9], []string{"header.idx", "byte offset 9", "dimension 1 of 3"}},
		{"magic.idx", append([]byte{1, 2}, good[2:]...), []string{"magic.idx", "byte offset 0", "not an IDX file"}},
		{"type.idx", append([]byte{0, 0, 0x07}, good[3:]...), []string{"type.idx", "byte offset 2", "element type 0x07"}},
		{"trailing.idx", append(append([]byte{}, good...), 1, 2, 3), []string{"trailing.idx", "byte offset 52", "3 bytes after"}},
		{"crc.idx.gz", badGzip, []string{"crc.idx.gz", "byte offset 52 of the decompressed data", "checksum"}},
		{"empty.idx", nil, []string{"empty.idx", "byte offset 0", "EOF"}},
		{"huge.idx", []byte{0, 0, 8, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, []string{"huge.idx", "byte offset 8", "more than"}},
	} {
		_, err := ReadIDX(writeFile(t, dir, tc.name, tc.data))
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", tc.name, err, w)
			}
		}
	}
}

func TestLoadIDXImagesChecks(t *testing.T) {
	dir := t.TempDir()
	im := writeFile(t, dir, "im", idxBytes([]int{5, 2, 3}, func(i int) byte { return byte(i) }))
	lb := writeFile(t, dir, "lb", idxBytes([]int{5}, func(i int) byte { return byte(i % 3) }))
	short := writeFile(t, dir, "lb4", idxBytes([]int{4}, func(i int) byte { return 0 }))
	s, err := LoadIDXImages("t", im, lb)
	if err != nil {
		t.Fatal(err)
	}
	m, label, err := s.Get(1)
	if err != nil || label != 1 || m.C != 1 || m.H != 2 || m.W != 3 || m.Pix[0] != 6.0/255 {
		t.Fatalf("Get(1): %v %d %+v", err, label, m)
	}
	if _, _, err := s.Get(5); err == nil {
		t.Fatal("Get(5) of 5: no error")
	}
	if _, err := LoadIDXImages("t", im, short); err == nil || !strings.Contains(err.Error(), "lb4") {
		t.Fatalf("label count mismatch: %v", err)
	}
	// Channels-last 4-D IDX becomes CHW.
	hwc := writeFile(t, dir, "hwc", idxBytes([]int{1, 1, 2, 3}, func(i int) byte { return byte(i) }))
	s, err = LoadIDXImages("t", hwc, "")
	if err != nil || s.C != 3 || s.Pix[0] != 0 || s.Pix[1] != 3 || s.Pix[2] != 1 {
		t.Fatalf("HWC: %v %+v", err, s)
	}
}

func TestFashionMNISTAndMNIST(t *testing.T) {
	if _, err := os.Stat(FashionMNISTDir); err != nil && os.Getenv(EnvFashionMNISTDir) == "" {
		t.Skipf("Fashion-MNIST not installed: %v", err)
	}
	test, err := LoadFashionMNIST("", false)
	if err != nil {
		t.Fatal(err)
	}
	if test.N != 10000 || test.C != 1 || test.H != 28 || test.W != 28 || len(test.Classes) != 10 {
		t.Fatalf("fashion-mnist test: %d x %dx%dx%d", test.N, test.C, test.H, test.W)
	}
	counts := make([]int, 10)
	for _, l := range test.Labels {
		counts[l]++
	}
	for c, n := range counts {
		if n != 1000 { // the test split is balanced
			t.Errorf("fashion-mnist test class %d has %d images", c, n)
		}
	}
	var sum float64
	for _, v := range test.Pix {
		sum += float64(v)
	}
	// Mean pixel of the Fashion-MNIST test split: 0.2868 (train 0.2860).
	if mean := sum / float64(len(test.Pix)) / 255; mean < 0.28 || mean > 0.293 {
		t.Errorf("fashion-mnist test mean pixel %.4f", mean)
	}
	if testing.Short() {
		return
	}
	ctx := context.Background()
	dir, err := MNISTDir(ctx)
	if err != nil {
		t.Skipf("MNIST module unavailable: %v", err)
	}
	mn, err := LoadMNIST(ctx, dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if mn.N != 10000 || mn.H != 28 || mn.Labels[0] != 7 || mn.Labels[1] != 2 { // t10k starts 7, 2, 1, 0
		t.Fatalf("mnist test: N=%d H=%d first labels %v", mn.N, mn.H, mn.Labels[:4])
	}
}
