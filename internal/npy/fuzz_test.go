package npy

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sslzoo/sslzoo/internal/fuzzcheck"
)

// FuzzDecode: any bytes give an error or an array whose data matches its
// shape and dtype, and that array survives Encode and Decode unchanged.
// The seeds are the NumPy-written fixtures and TestRejects' bad files.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.npy")
	for _, p := range files {
		fuzzcheck.Seed(f, filepath.Base(p), fuzzcheck.File(f, p))
	}
	good := fuzzcheck.File(f, "testdata/f32_2x3.npy")
	fuzzcheck.Seed(f, "truncated_data", good[:len(good)-3])
	fuzzcheck.Seed(f, "truncated_header", good[:40])
	huge := []byte("{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 4), }\n")
	v2 := append([]byte(magic+"\x02\x00"), binary.LittleEndian.AppendUint32(nil, uint32(len(huge)))...)
	fuzzcheck.Seed(f, "huge_shape_v2", append(v2, huge...))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzcheck.Bounded(t, fuzzcheck.Limit(len(b), 16), func() {
			a, err := Decode("fuzz.npy", b)
			if err != nil {
				return
			}
			n := 1
			for _, d := range a.Shape {
				n *= d
			}
			if a.Len() != n || typeOf(a.Data) != a.DType {
				t.Fatalf("%s %v holds %d elements of Go type %T", a.DType, a.Shape, a.Len(), a.Data)
			}
			if n*a.DType.Size() > len(b)-10 { // 10: the smallest header
				t.Fatalf("%d elements of %s from a %d-byte file", n, a.DType, len(b))
			}
			enc, err := Encode(a)
			if err != nil {
				t.Fatalf("Encode of a decoded array: %v", err)
			}
			back, err := Decode("re-encoded.npy", enc)
			if err != nil {
				t.Fatalf("Decode of Encode: %v", err)
			}
			if back.DType != a.DType || !slices.Equal(back.Shape, a.Shape) || !bytes.Equal(enc[len(enc)-n*a.DType.Size():], b[len(b)-n*a.DType.Size():]) {
				t.Fatalf("round trip changed %s %v into %s %v or its bytes", a.DType, a.Shape, back.DType, back.Shape)
			}
		})
	})
}
