package main

import (
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"
)

// The demo reads Fashion-MNIST straight from Debian's dataset-fashion-mnist
// files. This is a small reader for just that; the data package will own
// dataset loading in general.

// idxFile is a decoded IDX file of unsigned bytes (type 0x08).
type idxFile struct {
	dims []int
	data []byte
}

// readIDX reads at most limit items (the first dimension) of a possibly
// gzip-compressed IDX file; limit <= 0 reads them all.
func readIDX(path string, limit int) (*idxFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	idx, err := decodeIDX(r, limit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return idx, nil
}

func decodeIDX(r io.Reader, limit int) (*idxFile, error) {
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return nil, fmt.Errorf("IDX header: %w", err)
	}
	if magic[0] != 0 || magic[1] != 0 {
		return nil, fmt.Errorf("not an IDX file (magic %x)", magic)
	}
	if magic[2] != 0x08 {
		return nil, fmt.Errorf("IDX element type 0x%02x, want 0x08 (unsigned byte)", magic[2])
	}
	nd := int(magic[3])
	if nd < 1 || nd > 4 {
		return nil, fmt.Errorf("IDX with %d dimensions, want 1 to 4", nd)
	}
	dims := make([]int, nd)
	per := 1
	for i := range dims {
		var d uint32
		if err := binary.Read(r, binary.BigEndian, &d); err != nil {
			return nil, fmt.Errorf("IDX dimension %d: %w", i, err)
		}
		if d == 0 || d > 1<<24 {
			return nil, fmt.Errorf("IDX dimension %d is %d", i, d)
		}
		dims[i] = int(d)
		if i > 0 {
			per *= int(d)
		}
	}
	if limit > 0 && limit < dims[0] {
		dims[0] = limit
	}
	data := make([]byte, dims[0]*per)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, fmt.Errorf("IDX data (%v bytes for shape %v): %w", len(data), dims, err)
	}
	return &idxFile{dims: dims, data: data}, nil
}
