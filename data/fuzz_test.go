package data

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/sslzoo/sslzoo/internal/fuzzcheck"
)

// FuzzDecodeIDX: any bytes give an error or an IDX whose data is exactly
// what its type and dimensions call for, read from the input itself (so
// writing the header back before the data gives the input again), with
// an allocation bounded by the input's size, whatever the header claims.
// The seeds are TestReadIDXErrorsNameFileAndOffset's files.
func FuzzDecodeIDX(f *testing.F) {
	good := idxBytes([]int{4, 3, 3}, func(i int) byte { return byte(i) })
	fuzzcheck.Seed(f, "good_4x3x3", good)
	fuzzcheck.Seed(f, "int16", []byte{0, 0, IDXInt16, 1, 0, 0, 0, 2, 0xff, 0xfe, 0x01, 0x00})
	fuzzcheck.Seed(f, "float64_1x1", []byte{0, 0, IDXFloat64, 2, 0, 0, 0, 1, 0, 0, 0, 1, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0})
	fuzzcheck.Seed(f, "truncated", good[:30])
	fuzzcheck.Seed(f, "header", good[:9])
	fuzzcheck.Seed(f, "magic", append([]byte{1, 2}, good[2:]...))
	fuzzcheck.Seed(f, "type", append([]byte{0, 0, 0x07}, good[3:]...))
	fuzzcheck.Seed(f, "trailing", append(append([]byte{}, good...), 1, 2, 3))
	fuzzcheck.Seed(f, "empty", []byte{})
	fuzzcheck.Seed(f, "huge", []byte{0, 0, 8, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	// A header just under the 4 GiB cap on a 12-byte file: the reader must
	// not reserve what the header declares before the data arrives.
	fuzzcheck.Seed(f, "big_header_short_file", []byte{0, 0, 8, 2, 0, 1, 0, 0, 0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzcheck.Bounded(t, fuzzcheck.Limit(len(b), 16), func() {
			x, err := DecodeIDX(bytes.NewReader(b), "fuzz.idx")
			if err != nil {
				return
			}
			size, ok := idxSize[x.Type]
			if !ok || len(x.Dims) == 0 || len(x.Dims) > 255 {
				t.Fatalf("type 0x%02x with %d dimensions", x.Type, len(x.Dims))
			}
			n := 1
			for _, d := range x.Dims {
				if d < 0 {
					t.Fatalf("dimensions %v", x.Dims)
				}
				n *= d
			}
			if len(x.Data) != n*size {
				t.Fatalf("type 0x%02x %v holds %d bytes", x.Type, x.Dims, len(x.Data))
			}
			head := []byte{0, 0, x.Type, byte(len(x.Dims))}
			for _, d := range x.Dims {
				head = binary.BigEndian.AppendUint32(head, uint32(d))
			}
			if !bytes.Equal(append(head, x.Data...), b) {
				t.Fatalf("header and data of type 0x%02x %v are not the input", x.Type, x.Dims)
			}
			if got := len(x.Float64s()); got != n {
				t.Fatalf("Float64s: %d values for %v", got, x.Dims)
			}
			if _, err := x.Uint8(); (err == nil) != (x.Type == IDXUint8) {
				t.Fatalf("Uint8 of type 0x%02x: %v", x.Type, err)
			}
		})
	})
}

// FuzzDecodeCIFAR: any bytes give an error or whole records, each label
// below its limit and each image 3x32x32, as many as the file holds. The
// seeds are TestCIFARCorruptFiles' files.
func FuzzDecodeCIFAR(f *testing.F) {
	good := cifarRecords([][]byte{{1}, {2}, {3}})
	fuzzcheck.Seed(f, "good_c10", good, false, false)
	fuzzcheck.Seed(f, "good_c100", cifarRecords([][]byte{{4, 44}, {19, 99}}), true, false)
	fuzzcheck.Seed(f, "good_c100_coarse", cifarRecords([][]byte{{4, 44}}), true, true)
	fuzzcheck.Seed(f, "short", good[:2*3073+100], false, false)
	fuzzcheck.Seed(f, "label", append(append([]byte{}, good[:3073]...), append([]byte{10}, good[3074:2*3073]...)...), false, false)
	fuzzcheck.Seed(f, "empty", []byte{}, false, false)
	fuzzcheck.Seed(f, "c100_label", cifarRecords([][]byte{{1, 2}, {20, 5}}), true, false)
	f.Fuzz(func(t *testing.T, b []byte, c100, coarse bool) {
		name, limits, labelAt := "cifar10", []int{10}, 0
		if c100 {
			name, limits, labelAt = "cifar100", []int{20, 100}, 1
			if coarse {
				labelAt = 0
			}
		}
		fuzzcheck.Bounded(t, fuzzcheck.Limit(len(b), 16), func() {
			s := &Images{Name: name, C: 3, H: cifarSide, W: cifarSide}
			if err := decodeCIFAR(s, "fuzz.bin", b, limits, labelAt); err != nil {
				return
			}
			s.N = len(s.Labels)
			rec := len(limits) + cifarPixels
			if s.N == 0 || s.N*rec != len(b) || len(s.Pix) != s.N*cifarPixels {
				t.Fatalf("%d records, %d pixel bytes from %d bytes", s.N, len(s.Pix), len(b))
			}
			for i, l := range s.Labels {
				if l < 0 || l >= limits[labelAt] {
					t.Fatalf("record %d: label %d, want < %d", i, l, limits[labelAt])
				}
				if !bytes.Equal(s.Pix[i*cifarPixels:(i+1)*cifarPixels], b[i*rec+len(limits):(i+1)*rec]) {
					t.Fatalf("record %d: pixels are not the file's", i)
				}
			}
			m, _, err := s.Get(s.N - 1)
			if err != nil || len(m.Pix) != cifarPixels {
				t.Fatalf("Get(%d): %v", s.N-1, err)
			}
		})
	})
}
