package data

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cifarRecords writes records in the real binary layout: label byte(s),
// then 1024 red, 1024 green and 1024 blue bytes, each plane row-major.
// Pixel (c, y, x) of record r holds (r*31 + c*7 + y*3 + x) % 256.
func cifarRecords(labels [][]byte) []byte {
	var out []byte
	for r, lab := range labels {
		out = append(out, lab...)
		for c := 0; c < 3; c++ {
			for y := 0; y < 32; y++ {
				for x := 0; x < 32; x++ {
					out = append(out, byte((r*31+c*7+y*3+x)%256))
				}
			}
		}
	}
	return out
}

func TestCIFAR10(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cifar-10-batches-bin")
	os.Mkdir(dir, 0o755)
	var train []string
	for b := 1; b <= 5; b++ {
		name := "data_batch_" + string(rune('0'+b)) + ".bin"
		train = append(train, writeFile(t, dir, name, cifarRecords([][]byte{{byte(b)}, {byte(9 - b)}})))
	}
	writeFile(t, dir, "test_batch.bin", cifarRecords([][]byte{{3}}))
	files, err := CIFARFiles(filepath.Dir(dir), false, true) // parent folder works too
	if err != nil || len(files) != 5 || files[0] != train[0] {
		t.Fatalf("CIFARFiles: %v %v", err, files)
	}
	s, err := LoadCIFAR10(files...)
	if err != nil {
		t.Fatal(err)
	}
	if s.N != 10 || s.C != 3 || s.H != 32 || s.W != 32 || s.Labels[0] != 1 || s.Labels[1] != 8 || s.Labels[9] != 4 {
		t.Fatalf("N=%d %dx%dx%d labels %v", s.N, s.C, s.H, s.W, s.Labels)
	}
	// Record 3 (second record of the second file, r=1 there): the planes
	// are R, G, B in order, so channel 2, y 5, x 9 = (31 + 14 + 15 + 9).
	m, label, _ := s.Get(3)
	if want := float32((31+14+15+9)%256) / 255; label != 7 || m.Pix[2*1024+5*32+9] != want {
		t.Fatalf("Get(3): label %d pixel %v want %v", label, m.Pix[2*1024+5*32+9], want)
	}
	test, err := CIFARFiles(dir, false, false)
	if err != nil || len(test) != 1 {
		t.Fatalf("test files: %v %v", err, test)
	}
}

func TestCIFAR100Labels(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "train.bin", cifarRecords([][]byte{{4, 44}, {19, 99}}))
	fine, err := LoadCIFAR100(false, p)
	if err != nil || fine.Labels[0] != 44 || fine.Labels[1] != 99 {
		t.Fatalf("fine: %v %v", err, fine)
	}
	coarse, err := LoadCIFAR100(true, p)
	if err != nil || coarse.Labels[0] != 4 || coarse.Labels[1] != 19 {
		t.Fatalf("coarse: %v %v", err, coarse)
	}
	if _, err := CIFARFiles(dir, true, false); err == nil {
		t.Fatal("no test.bin: no error")
	}
}

func TestCIFARCorruptFiles(t *testing.T) {
	dir := t.TempDir()
	good := cifarRecords([][]byte{{1}, {2}, {3}})
	for _, tc := range []struct {
		name  string
		data  []byte
		c100  bool
		wants []string
	}{
		{"short.bin", good[:2*3073+100], false, []string{"short.bin", "byte offset 6146", "truncated record 2", "100 of 3073"}},
		{"label.bin", append(append([]byte{}, good[:3073]...), append([]byte{10}, good[3074:2*3073]...)...), false, []string{"label.bin", "byte offset 3073", "label 10, want < 10", "record 1"}},
		{"empty.bin", nil, false, []string{"empty.bin", "byte offset 0", "empty"}},
		{"c100.bin", cifarRecords([][]byte{{1, 2}, {20, 5}}), true, []string{"c100.bin", "byte offset 3074", "label 20, want < 20"}},
	} {
		p := writeFile(t, dir, tc.name, tc.data)
		var err error
		if tc.c100 {
			_, err = LoadCIFAR100(false, p)
		} else {
			_, err = LoadCIFAR10(p)
		}
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, w := range tc.wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", tc.name, err, w)
			}
		}
	}
}
