package weights

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/tensor"
)

const torchFixture = "testdata/torch_dtypes.safetensors"

func mustFloat32(t *testing.T, f *File, name string) *tensor.Tensor {
	t.Helper()
	v, err := f.Float32(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func sameBits(a, b []float32) int {
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}

// TestReadTorchDtypes reads a file that PyTorch tensors were serialised into
// (by scripts/gen_nn_golden.py) and checks every conversion against the
// float32 values PyTorch itself converted to.
func TestReadTorchDtypes(t *testing.T) {
	f, err := Read(torchFixture)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["format"] != "pt" || f.Metadata["written_by"] == "" {
		t.Errorf("metadata = %v", f.Metadata)
	}
	for _, pair := range [][2]string{{"f64", "f64_as_f32"}, {"f16", "f16_as_f32"}, {"bf16", "bf16_as_f32"}} {
		got, want := mustFloat32(t, f, pair[0]), mustFloat32(t, f, pair[1])
		if !tensor.SameShape(got.Shape, want.Shape) {
			t.Fatalf("%s: shape %v, want %v", pair[0], got.Shape, want.Shape)
		}
		if i := sameBits(got.Data, want.Data); i >= 0 {
			t.Errorf("%s[%d] = %g, PyTorch says %g", pair[0], i, got.Data[i], want.Data[i])
		}
	}
	// Our float32 -> half / bfloat16 rounding must give PyTorch's bits.
	src := mustFloat32(t, f, "round_src")
	for _, c := range []struct {
		name string
		d    DType
	}{{"round_f16", F16}, {"round_bf16", BF16}} {
		enc, err := FromFloat32As(src, c.d)
		if err != nil {
			t.Fatal(err)
		}
		want := f.Tensors[c.name].Data
		for i := 0; i < len(want); i += 2 {
			if !bytes.Equal(enc.Data[i:i+2], want[i:i+2]) {
				t.Errorf("%s: %g encodes to %x, PyTorch to %x", c.name, src.Data[i/2], enc.Data[i:i+2], want[i:i+2])
			}
		}
	}
	ints := map[string][]int64{
		"i64":        {-3, 0, 5, 1 << 40},
		"i32":        {-7, math.MaxInt32, 0},
		"u8":         {0, 1, 200, 255},
		"bool":       {1, 0, 1},
		"scalar_i64": {7},
	}
	for name, want := range ints {
		got, err := f.Tensors[name].Int64()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %v, want %v", name, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: %v, want %v", name, got, want)
				break
			}
		}
	}
	if s := f.Tensors["scalar_i64"].Shape; len(s) != 0 {
		t.Errorf("scalar shape %v", s)
	}
	if e := mustFloat32(t, f, "empty"); !tensor.SameShape(e.Shape, []int{0, 3}) || len(e.Data) != 0 {
		t.Errorf("empty tensor read as %v", e)
	}
	if _, err := f.Tensors["f32"].Int64(); err == nil {
		t.Error("Int64 of an F32 tensor should fail")
	}
	if _, err := f.Float32("nope"); err == nil || !strings.Contains(err.Error(), torchFixture) {
		t.Errorf("missing tensor error %v should name the file", err)
	}
}

// TestRoundTripTorchFile rewrites PyTorch's file with Write and checks that
// every tensor and the metadata survive byte for byte.
func TestRoundTripTorchFile(t *testing.T) {
	f, err := Read(torchFixture)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "copy.safetensors")
	if err := Write(out, f.Tensors, f.Metadata); err != nil {
		t.Fatal(err)
	}
	g, err := Read(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Tensors) != len(f.Tensors) {
		t.Fatalf("%d tensors back, want %d", len(g.Tensors), len(f.Tensors))
	}
	for name, a := range f.Tensors {
		b := g.Tensors[name]
		if b == nil || a.DType != b.DType || !tensor.SameShape(a.Shape, b.Shape) || !bytes.Equal(a.Data, b.Data) {
			t.Errorf("tensor %q changed in the round trip", name)
		}
	}
	if len(g.Metadata) != len(f.Metadata) || g.Metadata["format"] != "pt" {
		t.Errorf("metadata %v, want %v", g.Metadata, f.Metadata)
	}
	raw, _ := os.ReadFile(out)
	if hl := binary.LittleEndian.Uint64(raw); hl%8 != 0 {
		t.Errorf("header length %d is not 8-aligned", hl)
	}
}

// TestTorchReadsGoFile has PyTorch read a file written here.
func TestTorchReadsGoFile(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import torch").Run(); err != nil {
		t.Skipf("no PyTorch at %s: %v", py, err)
	}
	x := tensor.FromSlice([]float32{1.5, -2, 3.25, 0, 1e-3, 7}, 2, 3)
	h, _ := FromFloat32As(x, F16)
	bf, _ := FromFloat32As(x, BF16)
	i64, _ := FromInt64([]int{}, []int64{-42})
	ts := map[string]*Tensor{
		"w":     FromFloat32(x),
		"w16":   h,
		"wbf16": bf,
		"count": i64,
		"rng":   FromBytes([]byte{0, 9, 255}),
		"none":  FromFloat32(tensor.New(0)),
	}
	path := filepath.Join(t.TempDir(), "go.safetensors")
	if err := Write(path, ts, map[string]string{"step": "12"}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "../scripts/gen_nn_golden.py", "--dump", path).Output()
	if err != nil {
		t.Fatalf("python could not read the file: %v", err)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	var meta map[string]string
	json.Unmarshal(got["__metadata__"], &meta)
	if meta["step"] != "12" {
		t.Errorf("metadata read by torch: %v", meta)
	}
	type entry struct {
		DType  string
		Shape  []int
		Values []float64
	}
	check := func(name, dtype string, shape []int, want []float64) {
		var e entry
		if err := json.Unmarshal(got[name], &e); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if e.DType != dtype || !tensor.SameShape(e.Shape, shape) || len(e.Values) != len(want) {
			t.Fatalf("%s: torch read %+v", name, e)
		}
		for i := range want {
			if math.Abs(e.Values[i]-want[i]) > 1e-2*math.Max(1, math.Abs(want[i])) {
				t.Errorf("%s: torch read %v, want %v", name, e.Values, want)
				break
			}
		}
	}
	xs := []float64{1.5, -2, 3.25, 0, 1e-3, 7}
	check("w", "F32", []int{2, 3}, xs)
	check("w16", "F16", []int{2, 3}, xs)
	check("wbf16", "BF16", []int{2, 3}, xs)
	check("count", "I64", []int{}, []float64{-42})
	check("rng", "U8", []int{3}, []float64{0, 9, 255})
	check("none", "F32", []int{0}, nil)
}

// rawFile assembles a safetensors file from a literal header and data.
func rawFile(header string, data []byte) []byte {
	b := make([]byte, 8, 8+len(header)+len(data))
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	return append(append(b, header...), data...)
}

// corruptFile is a malformed safetensors file and what its error must say.
type corruptFile struct {
	name string
	file []byte
	want []string // substrings the error must contain
}

// validFile is a well-formed one-tensor file the corrupt files vary.
func validFile() []byte {
	return rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8))
}

// corruptFiles are TestParseRejectsCorruptFiles' cases, also FuzzParse's
// seeds.
func corruptFiles() []corruptFile {
	eight := make([]byte, 8)
	valid := validFile()
	hugeLen := append([]byte(nil), valid...)
	binary.LittleEndian.PutUint64(hugeLen, 1<<40)
	beyond := append([]byte(nil), valid...)
	binary.LittleEndian.PutUint64(beyond, uint64(len(valid)))
	return []corruptFile{
		{"empty file", nil, []string{"shorter than the 8-byte"}},
		{"7 bytes", []byte{1, 2, 3, 4, 5, 6, 7}, []string{"7 bytes"}},
		{"header length beyond file", beyond, []string{"beyond the file", "truncated"}},
		{"header length absurd", hugeLen, []string{"exceeds"}},
		{"truncated data", valid[:len(valid)-3], []string{`tensor "a"`, "[0,8]", "beyond the 5-byte data section"}},
		{"not an object", rawFile(`[1,2]`, nil), []string{"JSON object"}},
		{"bad json", rawFile(`{"a":{"dtype":"F32",`, nil), []string{"header"}},
		{"trailing json", rawFile(`{} {}`, nil), []string{"trailing content"}},
		{"duplicate name", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), []string{`tensor "a"`, "twice"}},
		{"unknown dtype", rawFile(`{"a":{"dtype":"F8","shape":[8],"data_offsets":[0,8]}}`, eight), []string{`tensor "a"`, `"F8"`}},
		{"missing field", rawFile(`{"a":{"dtype":"F32","shape":[2]}}`, eight), []string{`tensor "a"`, "data_offsets"}},
		{"unknown field", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}}`, eight), []string{`tensor "a"`, "unknown field"}},
		{"three offsets", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}}`, eight), []string{`tensor "a"`, "2 numbers"}},
		{"decreasing offsets", rawFile(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, eight), []string{`tensor "a"`, "[8,0]"}},
		{"negative offset", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}`, eight), []string{`tensor "a"`, "[-8,0]"}},
		{"offsets out of range", rawFile(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, eight), []string{`tensor "a"`, "[0,16]", "8-byte data section"}},
		{"shape size mismatch", rawFile(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, eight), []string{`tensor "a"`, "shape [3] needs 12 bytes", "[0,8]"}},
		{"negative dim", rawFile(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, eight), []string{`tensor "a"`, "negative"}},
		{"overflowing shape", rawFile(`{"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, eight), []string{`tensor "a"`, "too large"}},
		{"overlap", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), []string{`tensor "b"`, "[4,8]", `overlap tensor "a"`}},
		{"gap", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[2],"data_offsets":[6,8]}}`, eight), []string{`tensor "b"`, "[6,8]", "gap", "bytes 4-6"}},
		{"trailing data", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, eight), []string{"4 trailing bytes"}},
		{"metadata not strings", rawFile(`{"__metadata__":{"k":1}}`, nil), []string{"__metadata__"}},
		{"empty name", rawFile(`{"":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, eight), []string{"empty tensor name"}},
	}
}

func TestParseRejectsCorruptFiles(t *testing.T) {
	for _, c := range corruptFiles() {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("bad.safetensors", c.file)
			if err == nil {
				t.Fatal("accepted a corrupt file")
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error %v does not wrap ErrFormat", err)
			}
			msg := err.Error()
			for _, w := range append(c.want, "bad.safetensors") {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
		})
	}
	if _, err := Parse("ok", validFile()); err != nil {
		t.Fatalf("valid file rejected: %v", err)
	}
	// Padding spaces after the JSON object are legal (the reference writer
	// aligns the header that way).
	if _, err := Parse("padded", rawFile(`{}      `, nil)); err != nil {
		t.Fatalf("padded header rejected: %v", err)
	}
	if f, err := Parse("nullmeta", rawFile(`{"__metadata__":null}`, nil)); err != nil || f.Metadata == nil {
		t.Fatalf("null metadata: %v %v", f, err)
	}
}

func TestReadMissingFile(t *testing.T) {
	_, err := Read(filepath.Join(t.TempDir(), "absent.safetensors"))
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "absent.safetensors") {
		t.Fatalf("error %v", err)
	}
}

func TestWriteIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "w.safetensors")
	x := tensor.FromSlice([]float32{1, 2, 3}, 3)
	if err := WriteFloat32(path, map[string]*tensor.Tensor{"x": x}, nil); err != nil {
		t.Fatal(err)
	}
	// A failing write (bad tensor) must leave the old file untouched and no
	// temporary file behind.
	before, _ := os.ReadFile(path)
	bad := map[string]*Tensor{"x": {DType: F32, Shape: []int{4}, Data: make([]byte, 12)}}
	if err := Write(path, bad, nil); err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Fatalf("bad tensor accepted or unnamed: %v", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("failed write changed the file")
	}
	// Overwrite succeeds and replaces the content.
	y := tensor.FromSlice([]float32{4, 5}, 2)
	if err := WriteFloat32(path, map[string]*tensor.Tensor{"y": y}, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	f, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Tensors["x"]; ok || f.Metadata["k"] != "v" {
		t.Fatalf("overwrite kept old content: %v %v", f.Names(), f.Metadata)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file", len(entries))
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
	if err := WriteFloat32(filepath.Join(dir, "no", "such", "dir.safetensors"), nil, nil); err == nil {
		t.Error("write into a missing directory succeeded")
	}
	if err := Write(path, map[string]*Tensor{"__metadata__": FromFloat32(y)}, nil); err == nil {
		t.Error("reserved name accepted")
	}
}

// TestHalfRoundTripExhaustive checks every finite or infinite half value
// converts to float32 and back unchanged.
func TestHalfRoundTripExhaustive(t *testing.T) {
	for h := range 1 << 16 {
		f := halfToFloat32(uint16(h))
		if f != f {
			continue // NaN payloads need not survive
		}
		if back := float32ToHalf(f); back != uint16(h) {
			t.Fatalf("half %#04x -> %g -> %#04x", h, f, back)
		}
	}
}

func TestTensorValidation(t *testing.T) {
	if _, err := FromInt64([]int{2}, []int64{1}); err == nil {
		t.Error("FromInt64 with wrong count accepted")
	}
	if _, err := FromFloat32As(tensor.New(1), I32); err == nil {
		t.Error("FromFloat32As to an int dtype accepted")
	}
	bad := &Tensor{DType: "Q", Shape: []int{1}, Data: make([]byte, 1)}
	if _, err := bad.Float32(); err == nil {
		t.Error("unknown dtype converted")
	}
}
