package weights

import (
	"bytes"
	"encoding/binary"
	"errors"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/sslzoo/sslzoo/internal/fuzzcheck"
	"github.com/sslzoo/sslzoo/tensor"
)

// parsePerByte bounds what one byte of a file may cost Parse: the tensors
// share the file's bytes, so the cost is the decoded header, at worst a
// shape list of 2-byte numbers ("1,") held as 8-byte ints in a slice that
// grows by doubling, plus the name, map entry and span of a tensor.
const parsePerByte = 64

// FuzzParse: any bytes give a malformed-file error of one line naming the
// file, or tensors whose bytes are exactly dtype size x product(shape),
// lie in the data section and tile it, and which Encode writes and Parse
// reads back with the same names, dtypes, shapes, bytes and metadata; each
// converts with Float32 (and the integer ones with Int64). Everything
// within the allocation bound. The seeds are the PyTorch-written test
// file, Encode's output and TestParseRejectsCorruptFiles' files.
func FuzzParse(f *testing.F) {
	fuzzcheck.Seed(f, "torch_dtypes.safetensors", fuzzcheck.File(f, "testdata/torch_dtypes.safetensors"))
	fuzzcheck.Seed(f, "valid", validFile())
	for _, c := range corruptFiles() {
		fuzzcheck.Seed(f, strings.ReplaceAll(c.name, " ", "_"), c.file)
	}
	fuzzcheck.Seed(f, "padded_empty", rawFile(`{}      `, nil))
	fuzzcheck.Seed(f, "null_metadata", rawFile(`{"__metadata__":null}`, nil))
	fuzzcheck.Seed(f, "zero_dim_huge_shape", rawFile(`{"a":{"dtype":"BF16","shape":[0,4611686018427387904,4],"data_offsets":[0,0]}}`, nil))
	i64, err := FromInt64([]int{}, []int64{-42})
	if err != nil {
		f.Fatal(err)
	}
	enc, err := Encode(map[string]*Tensor{
		"w":     FromFloat32(tensor.FromSlice([]float32{1, -2, 3.5, 0, 1e-8, 6}, 2, 3)),
		"count": i64,
		"rng":   FromBytes([]byte{0, 9, 255}),
		"none":  {DType: F16, Shape: []int{0, 3}, Data: []byte{}},
		"flags": {DType: BOOL, Shape: []int{2}, Data: []byte{1, 0}},
	}, map[string]string{"format": "pt", "sslzoo.arch_config": `{"name":"x"}`})
	if err != nil {
		f.Fatal(err)
	}
	fuzzcheck.Seed(f, "encoded", enc)
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzcheck.Bounded(t, fuzzcheck.Limit(len(b), parsePerByte), func() {
			sf, err := Parse("fuzz.safetensors", b)
			if err != nil {
				if msg := err.Error(); !errors.Is(err, ErrFormat) || !strings.HasPrefix(msg, "safetensors fuzz.safetensors: ") || strings.ContainsAny(msg, "\n\r") {
					t.Fatalf("error %q is not one line naming the file as malformed", msg)
				}
				return
			}
			checkParsed(t, b, sf)
		})
	})
}

// checkParsed holds a file Parse took from b to FuzzParse's contract.
func checkParsed(t *testing.T, b []byte, sf *File) {
	data := b[8+binary.LittleEndian.Uint64(b):]
	covered := 0
	for name, x := range sf.Tensors {
		n, size := int64(1), int64(x.DType.Size())
		for _, d := range x.Shape {
			if d < 0 || (d > 0 && n > math.MaxInt64/int64(d)) {
				t.Fatalf("tensor %q: shape %v", name, x.Shape)
			}
			n *= int64(d)
		}
		if size == 0 || n > math.MaxInt64/size || int64(len(x.Data)) != n*size {
			t.Fatalf("tensor %q: %s %v holds %d bytes", name, x.DType, x.Shape, len(x.Data))
		}
		if len(x.Data) > 0 {
			lo := uintptr(unsafe.Pointer(unsafe.SliceData(data)))
			at := uintptr(unsafe.Pointer(unsafe.SliceData(x.Data)))
			if at < lo || at+uintptr(len(x.Data)) > lo+uintptr(len(data)) {
				t.Fatalf("tensor %q: its bytes lie outside the data section", name)
			}
		}
		covered += len(x.Data)
		if n <= 1<<20 {
			if _, err := x.Float32(); err != nil {
				t.Fatalf("tensor %q: Float32: %v", name, err)
			}
			if _, err := x.Int64(); (err == nil) == x.DType.IsFloat() {
				t.Fatalf("tensor %q: Int64 of %s: %v", name, x.DType, err)
			}
		}
	}
	if covered != len(data) {
		t.Fatalf("tensors hold %d bytes of a %d-byte data section", covered, len(data))
	}
	if sf.Metadata == nil {
		t.Fatal("nil Metadata")
	}
	enc, err := Encode(sf.Tensors, sf.Metadata)
	if err != nil {
		t.Fatalf("Encode of parsed tensors: %v", err)
	}
	back, err := Parse("re-encoded.safetensors", enc)
	if err != nil {
		t.Fatalf("Parse of Encode: %v", err)
	}
	if !maps.Equal(back.Metadata, sf.Metadata) || !slices.Equal(back.Names(), sf.Names()) {
		t.Fatalf("round trip changed names %q or metadata %q into %q, %q", sf.Names(), sf.Metadata, back.Names(), back.Metadata)
	}
	for name, x := range sf.Tensors {
		y := back.Tensors[name]
		if y.DType != x.DType || !slices.Equal(y.Shape, x.Shape) || !bytes.Equal(y.Data, x.Data) {
			t.Fatalf("round trip changed tensor %q from %s %v into %s %v or its bytes", name, x.DType, x.Shape, y.DType, y.Shape)
		}
	}
}
