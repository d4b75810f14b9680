package npy

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestReadNumPyFiles reads files that NumPy wrote (testdata/gen.py).
func TestReadNumPyFiles(t *testing.T) {
	cases := []struct {
		file  string
		dtype DType
		shape []int
		data  any
	}{
		{"f32_2x3.npy", Float32, []int{2, 3}, []float32{-0.5, -0.25, 0, 0.25, 0.5, 0.75}},
		{"f64_3.npy", Float64, []int{3}, []float64{1.5, -2.25, 1e300}},
		{"i64_2x2.npy", Int64, []int{2, 2}, []int64{0, -1, 1 << 40, 7}},
		{"i32_scalar.npy", Int32, []int{}, []int32{-42}},
		{"f32_0x3.npy", Float32, []int{0, 3}, []float32{}},
		{"f32_v2.npy", Float32, []int{4}, []float32{0, 1, 2, 3}},
	}
	for _, c := range cases {
		a, err := ReadFile(filepath.Join("testdata", c.file))
		if err != nil {
			t.Errorf("%s: %v", c.file, err)
			continue
		}
		if a.DType != c.dtype || !reflect.DeepEqual(a.Shape, c.shape) || !reflect.DeepEqual(a.Data, c.data) {
			t.Errorf("%s: got %s %v %v, want %s %v %v", c.file, a.DType, a.Shape, a.Data, c.dtype, c.shape, c.data)
		}
	}
}

// TestRejects: every malformed or unsupported file gets an error that
// names the file and the problem.
func TestRejects(t *testing.T) {
	good, err := os.ReadFile("testdata/f32_2x3.npy")
	if err != nil {
		t.Fatal(err)
	}
	hdr := func(dict string) []byte {
		pad := 64 - 10 - len(dict) - 1
		if pad < 0 {
			pad = 0
		}
		out := []byte(magic + "\x01\x00")
		n := len(dict) + pad + 1
		out = append(out, byte(n), byte(n>>8))
		out = append(out, dict+strings.Repeat(" ", pad)+"\n"...)
		return append(out, 0, 0, 0x80, 0x3f)
	}
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "magic"},
		{"garbage", []byte("PK\x03\x04 this is a zip"), "magic"},
		{"truncated data", good[:len(good)-3], "truncated"},
		{"trailing bytes", append(append([]byte{}, good...), 0), "trailing"},
		{"truncated header", good[:40], "runs past the end"},
		{"truncated length", good[:9], "truncated inside the header length"},
		{"version", append([]byte(magic+"\x04\x00"), good[8:]...), "version 4.0"},
		{"fortran", must(os.ReadFile("testdata/fortran.npy")), "Fortran"},
		{"big-endian", must(os.ReadFile("testdata/bigendian.npy")), "'>f4'"},
		{"bool", must(os.ReadFile("testdata/bool.npy")), "'|b1'"},
		{"extra key", hdr("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}"), `unexpected key "x"`},
		{"missing key", hdr("{'descr': '<f4', 'shape': (1,)}"), `"fortran_order" is missing`},
		{"duplicate key", hdr("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}"), "twice"},
		{"negative dim", hdr("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}"), "non-negative"},
		{"tuple comma", hdr("{'descr': '<f4', 'fortran_order': False, 'shape': (1)}"), "trailing comma"},
		{"not a dict", hdr("['descr', '<f4']"), "not a dictionary"},
		{"junk after", hdr("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x"), "text after"},
		{"bad bool", hdr("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}"), "want True or False"},
		{"huge shape", hdr("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4)}"), "too large"},
	}
	for _, c := range cases {
		_, err := Decode("x.npy", c.b)
		if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "x.npy: ") {
			t.Errorf("%s: error %v, want ErrFormat naming x.npy and containing %q", c.name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error spans lines: %q", c.name, err)
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestRoundTrip writes every type and reads it back; when NumPy is
// installed it must read our files to the same values.
func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	arrays := map[string]*Array{
		"a.npy": {Float32, []int{2, 1, 3}, []float32{1, 2, 3, 4, 5, -6.5}},
		"b.npy": {Float64, []int{2}, []float64{0.1, -3}},
		"c.npy": {Int32, []int{}, []int32{9}},
		"d.npy": {Int64, []int{3, 0}, []int64{}},
		"e.npy": {Int64, []int{1, 4}, []int64{101, 2023, 0, -(1 << 62)}},
	}
	for name, a := range arrays {
		p := filepath.Join(dir, name)
		if err := WriteFile(p, a); err != nil {
			t.Fatal(err)
		}
		raw, _ := os.ReadFile(p)
		if hl := 10 + int(raw[8]) + int(raw[9])<<8; hl%64 != 0 {
			t.Errorf("%s: data starts at %d, not 64-byte aligned", name, hl)
		}
		back, err := ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, a) {
			t.Errorf("%s: read back %+v, wrote %+v", name, back, a)
		}
	}
	if exec.Command("/usr/bin/python3", "-c", "import numpy").Run() != nil {
		t.Log("numpy not installed: skipping the check with NumPy")
		return
	}
	script := `import sys, numpy as np
for p in sys.argv[1:]:
    a = np.load(p)
    print(p.rsplit('/', 1)[1], a.dtype, list(a.shape), a.ravel().tolist())
`
	args := []string{"-c", script}
	for _, n := range []string{"a.npy", "b.npy", "c.npy", "d.npy", "e.npy"} {
		args = append(args, filepath.Join(dir, n))
	}
	out, err := exec.Command("/usr/bin/python3", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("numpy: %v\n%s", err, out)
	}
	want := `a.npy float32 [2, 1, 3] [1.0, 2.0, 3.0, 4.0, 5.0, -6.5]
b.npy float64 [2] [0.1, -3.0]
c.npy int32 [] [9]
d.npy int64 [3, 0] []
e.npy int64 [1, 4] [101, 2023, 0, -4611686018427387904]
`
	if string(out) != want {
		t.Errorf("numpy read:\n%s\nwant:\n%s", out, want)
	}
}

// TestEncodeErrors: inconsistent arrays are refused, and a failed write
// leaves no file behind.
func TestEncodeErrors(t *testing.T) {
	for _, a := range []*Array{
		{Float32, []int{2}, []float32{1}},
		{Float32, []int{1}, []int64{1}},
		{"uint8", []int{1}, []float32{1}},
		{Float32, []int{-1}, []float32{}},
	} {
		if _, err := Encode(a); err == nil {
			t.Errorf("Encode(%+v) succeeded", a)
		}
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "out.npy")
	if err := WriteFile(p, &Array{Float32, []int{3}, []float32{1}}); err == nil {
		t.Fatal("WriteFile succeeded on a bad array")
	}
	if err := WriteFile(filepath.Join(dir, "missing", "x.npy"), &Array{Float32, []int{1}, []float32{1}}); err == nil {
		t.Fatal("WriteFile into a missing folder succeeded")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("failed writes left %d files", len(ents))
	}
}
