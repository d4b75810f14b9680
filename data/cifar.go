package data

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The CIFAR binary format (the "binary version" archives): fixed-size
// records of label byte(s) then 3072 pixel bytes, 1024 red, 1024 green,
// 1024 blue, each 32x32 row-major. CIFAR-10 has one label byte; CIFAR-100
// has the coarse label then the fine one.
const (
	cifarSide   = 32
	cifarPixels = 3 * cifarSide * cifarSide
)

// CIFAR10Classes are the CIFAR-10 label names (batches.meta.txt order).
var CIFAR10Classes = []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}

// LoadCIFAR10 reads CIFAR-10 binary batch files into one dataset.
func LoadCIFAR10(files ...string) (*Images, error) {
	s, err := loadCIFAR("cifar10", []int{10}, 0, files)
	if err != nil {
		return nil, err
	}
	s.Classes = CIFAR10Classes
	return s, nil
}

// LoadCIFAR100 reads CIFAR-100 binary files, with the 100 fine labels, or
// the 20 coarse ones when coarse is set.
func LoadCIFAR100(coarse bool, files ...string) (*Images, error) {
	if coarse {
		return loadCIFAR("cifar100-coarse", []int{20, 100}, 0, files)
	}
	return loadCIFAR("cifar100", []int{20, 100}, 1, files)
}

// loadCIFAR reads records with one label byte per entry of limits (each
// label must be below its limit) and keeps the label at labelAt.
func loadCIFAR(name string, limits []int, labelAt int, files []string) (*Images, error) {
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no files given", name)
	}
	s := &Images{Name: name, C: 3, H: cifarSide, W: cifarSide}
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if err := decodeCIFAR(s, path, b, limits, labelAt); err != nil {
			return nil, err
		}
	}
	s.N = len(s.Labels)
	return s, nil
}

// decodeCIFAR appends the records of one binary file's bytes b to s (path
// names the file in errors); limits and labelAt are loadCIFAR's.
func decodeCIFAR(s *Images, path string, b []byte, limits []int, labelAt int) error {
	labelBytes := len(limits)
	rec := labelBytes + cifarPixels
	if len(b) == 0 {
		return fmt.Errorf("%s: byte offset 0: empty file", path)
	}
	if len(b)%rec != 0 {
		full := len(b) / rec
		return fmt.Errorf("%s: byte offset %d: truncated record %d (%d of %d bytes; the file is %d bytes, not a multiple of the %s record size %d)",
			path, full*rec, full, len(b)-full*rec, rec, len(b), s.Name, rec)
	}
	for off := 0; off < len(b); off += rec {
		for j, lim := range limits {
			if v := int(b[off+j]); v >= lim {
				return fmt.Errorf("%s: byte offset %d: label %d, want < %d (record %d)", path, off+j, v, lim, off/rec)
			}
		}
		s.Labels = append(s.Labels, int(b[off+labelAt]))
		s.Pix = append(s.Pix, b[off+labelBytes:off+rec]...)
	}
	return nil
}

// CIFARFiles lists the binary files of a split in dir, which may be the
// extracted folder itself or its parent: CIFAR-10 (cifar-10-batches-bin):
// data_batch_1..5.bin for train, test_batch.bin for test; CIFAR-100
// (cifar-100-binary): train.bin, test.bin.
func CIFARFiles(dir string, cifar100, train bool) ([]string, error) {
	sub, names := "cifar-10-batches-bin", []string{"test_batch.bin"}
	if train {
		names = []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"}
	}
	if cifar100 {
		sub, names = "cifar-100-binary", []string{"test.bin"}
		if train {
			names = []string{"train.bin"}
		}
	}
	for _, d := range []string{dir, filepath.Join(dir, sub)} {
		var out []string
		for _, n := range names {
			if _, err := os.Stat(filepath.Join(d, n)); err == nil {
				out = append(out, filepath.Join(d, n))
			}
		}
		if len(out) == len(names) {
			return out, nil
		}
	}
	return nil, fmt.Errorf("cifar: %s (or %s inside it) lacks %s", dir, sub, strings.Join(names, ", "))
}
