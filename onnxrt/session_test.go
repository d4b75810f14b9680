package onnxrt

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/sslzoo/sslzoo/export/onnxpb"
)

// needORT skips a test when ONNX Runtime cannot be loaded.
func needORT(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("ONNX Runtime unavailable (%v)", err)
	}
}

// dims builds a TensorShapeProto; a string is a symbolic dimension.
func dims(ds ...any) *onnxpb.TensorShapeProto {
	s := &onnxpb.TensorShapeProto{}
	for _, d := range ds {
		dim := &onnxpb.TensorShapeProto_Dimension{}
		switch d := d.(type) {
		case int:
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}
		case string:
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d}
		}
		s.Dim = append(s.Dim, dim)
	}
	return s
}

func tensorValue(name string, dt DType, shape *onnxpb.TensorShapeProto) *onnxpb.ValueInfoProto {
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{
		Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(dt)), Shape: shape}}}}
}

func node(op string, in, out []string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{OpType: proto.String(op), Input: in, Output: out, Attribute: attrs}
}

func intAttr(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func model(g *onnxpb.GraphProto, meta map[string]string) []byte {
	m := &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: proto.Int64(17)}},
		Graph:       g,
	}
	for k, v := range meta {
		m.MetadataProps = append(m.MetadataProps, &onnxpb.StringStringEntryProto{Key: proto.String(k), Value: proto.String(v)})
	}
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// gemmReluModel is y = relu(x @ w^T + b) with x [batch,3], w [2,3], b [2].
func gemmReluModel() []byte {
	return model(&onnxpb.GraphProto{
		Name: proto.String("gemm_relu"),
		Node: []*onnxpb.NodeProto{
			node("Gemm", []string{"x", "w", "b"}, []string{"h"}, intAttr("transB", 1)),
			node("Relu", []string{"h"}, []string{"y"}),
		},
		Initializer: []*onnxpb.TensorProto{
			{Name: proto.String("w"), DataType: proto.Int32(int32(Float32)), Dims: []int64{2, 3}, FloatData: []float32{1, 2, 3, -1, -2, -3}},
			{Name: proto.String("b"), DataType: proto.Int32(int32(Float32)), Dims: []int64{2}, FloatData: []float32{0.5, 1}},
		},
		Input:  []*onnxpb.ValueInfoProto{tensorValue("x", Float32, dims("batch", 3))},
		Output: []*onnxpb.ValueInfoProto{tensorValue("y", Float32, dims("batch", 2))},
	}, map[string]string{"sslzoo.test": "gemm"})
}

func TestSessionRun(t *testing.T) {
	needORT(t)
	s, err := OpenBytes("gemm_relu", gemmReluModel(), Options{IntraOpThreads: 1, Optimization: OptBasic})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := fmt.Sprint(s.Inputs()); got != "[x float32 [batch 3]]" {
		t.Errorf("inputs %s", got)
	}
	if s.Metadata()["sslzoo.test"] != "gemm" {
		t.Errorf("metadata %v", s.Metadata())
	}
	// Two rows, worked by hand: [1,1,1] -> [6.5, -5] -> relu [6.5, 0];
	// [-1,0,2] -> [5.5, -4] ... row 2: 1*-1+2*0+3*2+0.5 = 5.5, -(5)+1 = -4.
	x := NewTensor([]int{2, 3}, []float32{1, 1, 1, -1, 0, 2})
	out, err := s.Run(x)
	if err != nil {
		t.Fatal(err)
	}
	want := NewTensor([]int{2, 2}, []float32{6.5, 0, 5.5, 0})
	if err := Close(out[0], want, 0, 0); err != nil {
		t.Fatalf("%v: got %v", err, out[0].Data)
	}
	named, err := s.RunNamed(map[string]*Tensor{"x": x})
	if err != nil {
		t.Fatal(err)
	}
	if err := Close(named["y"], want, 0, 0); err != nil {
		t.Fatal(err)
	}
}

func TestSessionConcurrent(t *testing.T) {
	needORT(t)
	s, err := OpenBytes("gemm_relu", gemmReluModel(), Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				v := float32(g*100 + i)
				out, err := s.Run(NewTensor([]int{1, 3}, []float32{v, 0, 0}))
				if err != nil {
					errs <- err
					return
				}
				if got := out[0].Data.([]float32)[0]; got != v+0.5 {
					errs <- fmt.Errorf("goroutine %d: got %v want %v", g, got, v+0.5)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestSessionScalarAndHalfOutputs covers the outputs onnxruntime_go cannot
// allocate itself (scalars and float16), which Run pre-allocates.
func TestSessionScalarAndHalfOutputs(t *testing.T) {
	needORT(t)
	data := model(&onnxpb.GraphProto{
		Name: proto.String("scalar_half"),
		Node: []*onnxpb.NodeProto{
			node("ReduceSum", []string{"x"}, []string{"sum"}, intAttr("keepdims", 0)),
			node("Cast", []string{"x"}, []string{"half"}, intAttr("to", int64(Float16))),
		},
		Input: []*onnxpb.ValueInfoProto{tensorValue("x", Float32, dims(2, 2))},
		Output: []*onnxpb.ValueInfoProto{
			tensorValue("sum", Float32, dims()),
			tensorValue("half", Float16, dims(2, 2)),
		},
	}, nil)
	s, err := OpenBytes("scalar_half", data, Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Run(NewTensor([]int{2, 2}, []float32{1, 2.5, -3, 65504}))
	if err != nil {
		t.Fatal(err)
	}
	if err := Close(out[0], NewTensor(nil, []float32{65504.5}), 0, 0); err != nil {
		t.Errorf("sum: %v (%v)", err, out[0].Data)
	}
	// 1, 2.5, -3 and 65504 (the largest half) are exact in float16.
	half := &Tensor{DType: Float16, Shape: []int{2, 2}, Data: []uint16{0x3c00, 0x4100, 0xc200, 0x7bff}}
	if err := Close(out[1], half, 0, 0); err != nil {
		t.Errorf("half: %v (%v)", err, out[1].Data)
	}
}

// TestSessionBadInput: every kind of bad input is a one-line error, never a
// panic.
func TestSessionBadInput(t *testing.T) {
	needORT(t)
	dir := t.TempDir()
	good := gemmReluModel()
	garbage := filepath.Join(dir, "garbage.onnx")
	os.WriteFile(garbage, []byte("this is not a protobuf \xff\xff\xff\xff"), 0o644)
	truncated := filepath.Join(dir, "truncated.onnx")
	os.WriteFile(truncated, good[:len(good)/2], 0o644)
	unknownOp := model(&onnxpb.GraphProto{
		Name:   proto.String("unknown"),
		Node:   []*onnxpb.NodeProto{node("NoSuchOp", []string{"x"}, []string{"y"})},
		Input:  []*onnxpb.ValueInfoProto{tensorValue("x", Float32, dims(1))},
		Output: []*onnxpb.ValueInfoProto{tensorValue("y", Float32, dims(1))},
	}, nil)
	noInputs := model(&onnxpb.GraphProto{
		Name: proto.String("const"),
		Node: []*onnxpb.NodeProto{{OpType: proto.String("Constant"), Output: []string{"y"}, Attribute: []*onnxpb.AttributeProto{{
			Name: proto.String("value_float"), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(1)}}}},
		Output: []*onnxpb.ValueInfoProto{tensorValue("y", Float32, dims())},
	}, nil)
	for _, c := range []struct {
		name string
		open func() (*Session, error)
		want string
	}{
		{"missing file", func() (*Session, error) { return Open(filepath.Join(dir, "nope.onnx"), Options{}) }, "no such file"},
		{"garbage", func() (*Session, error) { return Open(garbage, Options{}) }, "not an ONNX model"},
		{"truncated", func() (*Session, error) { return Open(truncated, Options{}) }, "not an ONNX model"},
		{"unknown op", func() (*Session, error) { return OpenBytes("unknown", unknownOp, Options{}) }, "NoSuchOp"},
		{"no inputs", func() (*Session, error) { return OpenBytes("const", noInputs, Options{}) }, "has no inputs"},
		{"threads", func() (*Session, error) { return OpenBytes("g", good, Options{IntraOpThreads: -1}) }, "intra-op threads"},
	} {
		s, err := c.open()
		if err == nil {
			s.Close()
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %q should be one line containing %q", c.name, err, c.want)
		}
	}

	s, err := OpenBytes("gemm_relu", good, Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		in   []*Tensor
		want string
	}{
		{"rank", []*Tensor{NewTensor([]int{3}, []float32{1, 2, 3})}, "does not match the model's x float32 [batch 3]"},
		{"dim", []*Tensor{NewTensor([]int{1, 4}, []float32{1, 2, 3, 4})}, "shape [1 4] does not match"},
		{"dtype", []*Tensor{NewTensor([]int{1, 3}, []int64{1, 2, 3})}, "model wants float32, got int64"},
		{"count", []*Tensor{NewTensor([]int{1, 3}, []float32{1, 2})}, "needs 3 elements, data has 2"},
		{"arity", nil, "takes 1 inputs"},
		{"nil", []*Tensor{nil}, "nil tensor"},
	} {
		_, err := s.Run(c.in...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	s.Close()
	if _, err := s.Run(NewTensor([]int{1, 3}, []float32{1, 2, 3})); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("run after close: %v", err)
	}
}

// TestCUDAWithoutProviders: the CPU-only ORT from npm has no CUDA provider
// libraries, and asking for cuda must name the missing file.
func TestCUDAWithoutProviders(t *testing.T) {
	needORT(t)
	if isFile(filepath.Join(filepath.Dir(LibraryPath()), cudaProviderFiles[0])) {
		t.Skip("this ONNX Runtime has CUDA provider libraries")
	}
	_, err := OpenBytes("g", gemmReluModel(), Options{Device: Device{CUDA: true, ID: 1}})
	if err == nil || !strings.Contains(err.Error(), "libonnxruntime_providers_shared.so is missing") ||
		!strings.Contains(err.Error(), "GPU build") || !strings.Contains(err.Error(), "cuda:1") {
		t.Fatalf("error %v should name the missing provider file and how to get a GPU build", err)
	}
}

func TestParseOptions(t *testing.T) {
	for s, want := range map[string]Device{"": {}, "cpu": {}, "cuda": {CUDA: true}, "CUDA:3": {CUDA: true, ID: 3}} {
		d, err := ParseDevice(s)
		if err != nil || d != want {
			t.Errorf("ParseDevice(%q) = %v, %v", s, d, err)
		}
	}
	for _, s := range []string{"tpu", "cuda:", "cuda:-1", "cuda:x"} {
		if _, err := ParseDevice(s); err == nil {
			t.Errorf("ParseDevice(%q) accepted", s)
		}
	}
	for s, want := range map[string]OptLevel{"": OptAll, "all": OptAll, "disable": OptDisable, "basic": OptBasic, "extended": OptExtended} {
		l, err := ParseOptLevel(s)
		if err != nil || l != want {
			t.Errorf("ParseOptLevel(%q) = %v, %v", s, l, err)
		}
	}
	if _, err := ParseOptLevel("max"); err == nil {
		t.Error("ParseOptLevel(max) accepted")
	}
}

func TestFindLibrary(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(LibraryEnv, filepath.Join(dir, "missing.so"))
	_, err := FindLibrary()
	if err == nil || !strings.Contains(err.Error(), "missing.so is not a file") || !strings.Contains(err.Error(), InstallHint) {
		t.Errorf("bad override: %v", err)
	}

	t.Setenv(LibraryEnv, "")
	t.Setenv("SSLZOO_CACHE", dir)
	t.Setenv("LD_LIBRARY_PATH", "")
	want := filepath.Join(dir, "onnxruntime", ORTVersion, "libonnxruntime.so.1")
	if CachedLibraryPath() != want {
		t.Fatalf("cache path %s, want %s", CachedLibraryPath(), want)
	}
	os.MkdirAll(filepath.Dir(want), 0o755)
	os.WriteFile(want, []byte("x"), 0o644)
	if got, err := FindLibrary(); err != nil || got != want {
		t.Errorf("FindLibrary() = %q, %v; want the cached %s", got, err, want)
	}

	os.Remove(want)
	saved := systemDirs
	systemDirs = []string{filepath.Join(dir, "sys")}
	defer func() { systemDirs = saved }()
	_, err = FindLibrary()
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), InstallHint) || !strings.Contains(err.Error(), "sys") {
		t.Errorf("not found: %v should list the paths tried and the install command", err)
	}
	os.MkdirAll(systemDirs[0], 0o755)
	sys := filepath.Join(systemDirs[0], "libonnxruntime.so")
	os.WriteFile(sys, []byte("x"), 0o644)
	if got, err := FindLibrary(); err != nil || got != sys {
		t.Errorf("FindLibrary() = %q, %v; want the system %s", got, err, sys)
	}
}

func TestTensorFromProto(t *testing.T) {
	raw := make([]byte, 8)
	for i, v := range []float32{1.5, -2} {
		b := math.Float32bits(v)
		raw[4*i], raw[4*i+1], raw[4*i+2], raw[4*i+3] = byte(b), byte(b>>8), byte(b>>16), byte(b>>24)
	}
	for _, c := range []struct {
		tp   *onnxpb.TensorProto
		want *Tensor
		err  string
	}{
		{&onnxpb.TensorProto{DataType: proto.Int32(1), Dims: []int64{2}, RawData: raw}, NewTensor([]int{2}, []float32{1.5, -2}), ""},
		{&onnxpb.TensorProto{DataType: proto.Int32(1), Dims: []int64{1, 2}, FloatData: []float32{3, 4}}, NewTensor([]int{1, 2}, []float32{3, 4}), ""},
		{&onnxpb.TensorProto{DataType: proto.Int32(7), Dims: []int64{}, Int64Data: []int64{-9}}, NewTensor(nil, []int64{-9}), ""},
		{&onnxpb.TensorProto{DataType: proto.Int32(9), Dims: []int64{3}, Int32Data: []int32{1, 0, 1}}, NewTensor([]int{3}, []bool{true, false, true}), ""},
		{&onnxpb.TensorProto{DataType: proto.Int32(3), Dims: []int64{2}, RawData: []byte{0xff, 0x7f}}, NewTensor([]int{2}, []int8{-1, 127}), ""},
		{&onnxpb.TensorProto{DataType: proto.Int32(8), Dims: []int64{2}, StringData: [][]byte{[]byte("a"), []byte("bc")}}, NewTensor([]int{2}, []string{"a", "bc"}), ""},
		{&onnxpb.TensorProto{Name: proto.String("w"), DataType: proto.Int32(1), Dims: []int64{3}, RawData: raw}, nil, `tensor "w": float32 [3] needs 3 elements of raw_data, has 8 bytes`},
		{&onnxpb.TensorProto{Name: proto.String("w"), DataType: proto.Int32(1), Dims: []int64{3}, FloatData: []float32{1}}, nil, "needs 3 values, the file holds 1"},
		// A huge declaration with no data is refused before anything is allocated.
		{&onnxpb.TensorProto{Name: proto.String("big"), DataType: proto.Int32(1), Dims: []int64{1 << 20, 1 << 20}}, nil, `tensor "big": float32 [1048576 1048576] needs 1099511627776 values, the file holds 0`},
		{&onnxpb.TensorProto{Name: proto.String("big"), DataType: proto.Int32(7), Dims: []int64{1 << 40}, RawData: raw}, nil, "needs 1099511627776 elements of raw_data, has 8 bytes"},
		{&onnxpb.TensorProto{Name: proto.String("huge"), DataType: proto.Int32(1), Dims: []int64{1 << 40, 1 << 40}}, nil, "too many elements"},
		{&onnxpb.TensorProto{Name: proto.String("w"), DataType: proto.Int32(1), Dims: []int64{1}, DataLocation: onnxpb.TensorProto_EXTERNAL.Enum()}, nil, "external data"},
	} {
		got, err := TensorFromProto(c.tp)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%v: error %v, want %q", c.tp, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", c.tp, err)
			continue
		}
		if err := Close(got, c.want, 0, 0); err != nil {
			t.Errorf("%v: %v", c.tp, err)
		}
	}
}

func TestHalfToFloat32(t *testing.T) {
	for h, want := range map[uint16]float32{0x3c00: 1, 0xc000: -2, 0x7bff: 65504, 0x0001: 5.960464477539063e-08, 0x8000: float32(math.Copysign(0, -1)), 0x3555: 0.333251953125} {
		if got := HalfToFloat32(h); got != want || math.Signbit(float64(got)) != math.Signbit(float64(want)) {
			t.Errorf("HalfToFloat32(%#x) = %v, want %v", h, got, want)
		}
	}
	if !math.IsInf(float64(HalfToFloat32(0x7c00)), 1) || !math.IsNaN(float64(HalfToFloat32(0x7e00))) {
		t.Error("inf/nan")
	}
}

// TestGoSession runs the hand-worked model on the Go engine, through
// OpenEngine, and checks its refusals.
func TestGoSession(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gemm_relu.onnx")
	if err := os.WriteFile(path, gemmReluModel(), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := OpenEngine(path, EngineGo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if e.Metadata()["sslzoo.test"] != "gemm" || fmt.Sprint(e.Inputs()) != "[x float32 [batch 3]]" {
		t.Errorf("metadata %v inputs %v", e.Metadata(), e.Inputs())
	}
	out, err := e.Run(NewTensor([]int{2, 3}, []float32{1, 1, 1, -1, 0, 2}))
	if err != nil {
		t.Fatal(err)
	}
	if err := Close(out[0], NewTensor([]int{2, 2}, []float32{6.5, 0, 5.5, 0}), 1e-6, 0); err != nil {
		t.Fatalf("%v: got %v", err, out[0].Data)
	}
	if _, err := e.Run(NewTensor([]int{2, 4}, make([]float32, 8))); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("wrong shape: %v", err)
	}
	if _, err := OpenEngine(path, "tpu", Options{}); err == nil {
		t.Error("unknown engine accepted")
	}

	garbage := filepath.Join(dir, "garbage.onnx")
	os.WriteFile(garbage, []byte("\x0a\xff\xff"), 0o644)
	unknown := filepath.Join(dir, "unknown.onnx")
	os.WriteFile(unknown, model(&onnxpb.GraphProto{
		Name: proto.String("unknown"),
		Node: []*onnxpb.NodeProto{
			node("NoSuchOp", []string{"x"}, []string{"h"}),
			node("AlsoMissing", []string{"h"}, []string{"y"}),
		},
		Input:  []*onnxpb.ValueInfoProto{tensorValue("x", Float32, dims(1))},
		Output: []*onnxpb.ValueInfoProto{tensorValue("y", Float32, dims(1))},
	}, nil), 0o644)
	halfIn := filepath.Join(dir, "half.onnx")
	os.WriteFile(halfIn, model(&onnxpb.GraphProto{
		Name:   proto.String("half"),
		Node:   []*onnxpb.NodeProto{node("Identity", []string{"x"}, []string{"y"})},
		Input:  []*onnxpb.ValueInfoProto{tensorValue("x", Float16, dims(1))},
		Output: []*onnxpb.ValueInfoProto{tensorValue("y", Float16, dims(1))},
	}, nil), 0o644)
	// Five Casts to a type the engine lacks, each read by two more nodes:
	// three reasons shown, the rest counted, none of the readers blamed.
	manyBad := filepath.Join(dir, "many.onnx")
	bad := &onnxpb.GraphProto{Name: proto.String("many"),
		Input:  []*onnxpb.ValueInfoProto{tensorValue("x", Float32, dims(1))},
		Output: []*onnxpb.ValueInfoProto{tensorValue("y", Float32, dims(1))}}
	for i := range 5 {
		h := fmt.Sprint("h", i)
		bad.Node = append(bad.Node, node("Cast", []string{"x"}, []string{h}, intAttr("to", int64(Float16))),
			node("Neg", []string{h}, []string{h + "n"}), node("Abs", []string{h + "n"}, []string{fmt.Sprint("a", i)}))
	}
	bad.Node = append(bad.Node, node("Identity", []string{"x"}, []string{"y"}))
	os.WriteFile(manyBad, model(bad, nil), 0o644)
	for _, c := range []struct{ path, want string }{
		{garbage, "not an ONNX model"},
		{unknown, "ops not supported by the Go engine: AlsoMissing (node #1), NoSuchOp (node #0); ONNX Runtime runs them (--engine ort)"},
		{halfIn, "float32, int64, int32, int8 and uint8"},
		{manyBad, "Cast node #0: Cast to float16: the Go engine carries float32, int64 and int32 only; Cast node #3: Cast to float16: the Go engine carries float32, int64 and int32 only; Cast node #6: Cast to float16: the Go engine carries float32, int64 and int32 only; and 2 more"},
		{filepath.Join(dir, "missing.onnx"), "no such file"},
	} {
		_, err := OpenGo(c.path)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("OpenGo(%s): %v, want one line containing %q", filepath.Base(c.path), err, c.want)
		}
	}
}

// TestBatcher: batched runs on a worker pool give the same rows as one run,
// on every available engine, and output errors name the rows.
func TestBatcher(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gemm_relu.onnx")
	if err := os.WriteFile(path, gemmReluModel(), 0o644); err != nil {
		t.Fatal(err)
	}
	kinds := []string{EngineGo}
	if Available() == nil {
		kinds = append(kinds, EngineORT)
	}
	x := NewTensor([]int{10, 3}, make([]float32, 30))
	for i := range 30 {
		x.Data.([]float32)[i] = float32(i%7) - 3
	}
	for _, k := range kinds {
		e, err := OpenEngine(path, k, Options{IntraOpThreads: 1})
		if err != nil {
			t.Fatal(err)
		}
		want, err := e.Run(x)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range []Batcher{{Engine: e, Size: 3, Workers: 2}, {Engine: e, Size: 4, Workers: 8}, {Engine: e}} {
			got, err := b.Run(x)
			if err != nil {
				t.Fatalf("%s %+v: %v", k, b, err)
			}
			if err := Close(got[0], want[0], 0, 0); err != nil {
				t.Errorf("%s size %d workers %d: %v", k, b.Size, b.Workers, err)
			}
		}
		bad := Batcher{Engine: e, Size: 4, Workers: 2}
		if _, err := bad.Run(NewTensor([]int{5, 2}, make([]float32, 10))); err == nil || !strings.Contains(err.Error(), "rows 0-4") {
			t.Errorf("%s: bad input error %v should name the rows", k, err)
		}
		e.Close()
	}
}

// hugeEmptyInitializerModel declares a 2^40-element initializer with no
// data, as a truncated or hostile file would.
func hugeEmptyInitializerModel() []byte {
	return model(&onnxpb.GraphProto{
		Name: proto.String("huge"),
		Node: []*onnxpb.NodeProto{node("MatMul", []string{"x", "w"}, []string{"y"})},
		Initializer: []*onnxpb.TensorProto{
			{Name: proto.String("w"), DataType: proto.Int32(int32(Float32)), Dims: []int64{1 << 20, 1 << 20}},
		},
		Input:  []*onnxpb.ValueInfoProto{tensorValue("x", Float32, dims("batch", 1<<20))},
		Output: []*onnxpb.ValueInfoProto{tensorValue("y", Float32, dims("batch", 1<<20))},
	}, nil)
}

// An initializer that declares 2^40 elements and carries none is refused
// by the Go engine with its name, before anything is allocated (it used to
// end in "fatal error: runtime: out of memory").
func TestGoEngineRefusesHugeEmptyInitializer(t *testing.T) {
	m := hugeEmptyInitializerModel()
	path := filepath.Join(t.TempDir(), "huge.onnx")
	if err := os.WriteFile(path, m, 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := OpenEngine(path, EngineGo, Options{})
	if err == nil {
		e.Close()
		t.Fatal("opened a model whose initializer has no data")
	}
	if !strings.Contains(err.Error(), `tensor "w"`) || !strings.Contains(err.Error(), "the file holds 0") {
		t.Errorf("error %v, want one naming the tensor and its missing data", err)
	}
}
