package main

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo"
	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/onnxrt"
)

// TestExportInt8: the bundled BYOL ResNet-18 exported as int8 QDQ loads on
// ONNX Runtime and the Go engine, and its embeddings of test images point
// where the float32 export's do.
func TestExportInt8(t *testing.T) {
	test, err := data.LoadFashionMNIST("", false)
	if err != nil {
		t.Skipf("no Fashion-MNIST: %v", err)
	}
	isolate(t)
	dir := t.TempDir()
	f32, i8 := filepath.Join(dir, "fp32.onnx"), filepath.Join(dir, "int8.onnx")
	if code, _, errs := runCLI("export", "byol-resnet18-fmnist", "--out", f32); code != 0 {
		t.Fatal(errs)
	}
	code, out, errs := runCLI("export", "byol-resnet18-fmnist", "--quantize", "int8", "--calibrate", "64", "--out", i8)
	if code != 0 {
		t.Fatal(errs)
	}
	if want := "quantized 20 Conv/MatMul/Gemm nodes to int8, calibrated on 64 images of fashion-mnist"; !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
	embed := func(path, engine string) [][]float32 {
		enc, err := sslzoo.Open(path, &sslzoo.Options{Engine: engine})
		if err != nil {
			t.Fatalf("%s on %s: %v", path, engine, err)
		}
		defer enc.Close()
		f, err := enc.DatasetFeatures(context.Background(), test.Subset(32), nil)
		if err != nil {
			t.Fatal(err)
		}
		rows := make([][]float32, f.N)
		for i := range rows {
			rows[i] = f.Row(i)
		}
		return rows
	}
	engines := []string{onnxrt.EngineGo}
	if onnxrt.Available() == nil {
		engines = append(engines, onnxrt.EngineORT)
	}
	want := embed(f32, onnxrt.EngineGo)
	for _, eng := range engines {
		got := embed(i8, eng)
		worst, mean := 1.0, 0.0
		for i := range got {
			c := cosine(got[i], want[i])
			worst, mean = min(worst, c), mean+c/float64(len(got))
		}
		t.Logf("int8 on %s vs float32: cosine mean %.4f, min %.4f over %d test images", eng, mean, worst, len(got))
		if worst < 0.98 {
			t.Errorf("int8 on %s: cosine %.4f < 0.98", eng, worst)
		}
	}
}

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}

// TestExportInt8Refusals: one line each, before anything heavy runs.
func TestExportInt8Refusals(t *testing.T) {
	isolate(t)
	out := filepath.Join(t.TempDir(), "m.onnx")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"byol-resnet18-fmnist", "--quantize", "int8", "--calibrate", "0"}, "--calibrate 0: want at least 1 image"},
		{[]string{"byol-resnet18-fmnist", "--quantize", "int4"}, `--quantize "int4": want int8`},
		{[]string{"--arch", "resnet18-cifar", "--quantize", "int8"}, "name the entry"},
		{[]string{"byol-resnet18-fmnist", "--calibrate", "8"}, "go with --quantize int8"},
		{[]string{"byol-resnet18-fmnist", "--quantize", "int8", "--calibration-data", "fashion-mnist:" + t.TempDir()}, "calibration set: fashion-mnist"},
	} {
		code, _, errs := runCLI(append([]string{"export", "--out", out}, c.args...)...)
		errs = lastLine(errs) // after the pull's progress bar
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want one line containing %q", c.args, code, errs, c.want)
		}
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestExportInt8EmptyCalibrationSet: a data set with no images is refused.
func TestExportInt8EmptyCalibrationSet(t *testing.T) {
	isolate(t)
	tinyFashion(t, 0, 1)
	code, _, errs := runCLI("export", "byol-resnet18-fmnist", "--quantize", "int8", "--out", filepath.Join(t.TempDir(), "m.onnx"))
	if errs = lastLine(errs); code == 0 || !strings.Contains(errs, "calibration set") || !strings.Contains(errs, "empty") {
		t.Errorf("exit %d, stderr %q, want a refusal of the empty calibration set", code, errs)
	}
}

// isolate runs the CLI offline on an empty HOME and cache (the bundled
// entry comes from the binary), ONNX Runtime still found.
func isolate(t *testing.T) {
	if lib, err := onnxrt.FindLibrary(); err == nil {
		t.Setenv("ONNXRUNTIME_SHARED_LIBRARY_PATH", lib)
	}
	t.Setenv("HOME", t.TempDir())
	t.Setenv("SSLZOO_CACHE", t.TempDir())
	t.Setenv("SSLZOO_OFFLINE", "1")
}
