package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/onnxrt"
)

// TestEvalModelMatchesCheckpoint: `eval knn --model` on a zoo entry's
// float export scores what `eval knn --checkpoint` scores on its weights
// (two feature paths: the ONNX file with its recorded preprocessing, and
// the Go network with the recipe's eval transform), on both engines.
func TestEvalModelMatchesCheckpoint(t *testing.T) {
	if _, err := data.LoadFashionMNIST("", false); err != nil {
		t.Skipf("no Fashion-MNIST: %v", err)
	}
	isolate(t)
	model := filepath.Join(t.TempDir(), "byol.onnx")
	if code, _, errs := runCLI("export", "byol-resnet18-fmnist", "--out", model); code != 0 {
		t.Fatal(errs)
	}
	top1 := func(args ...string) float64 {
		t.Helper()
		args = append([]string{"eval", "knn", "--limit-train", "1000", "--limit-test", "300", "--json"}, args...)
		code, out, errs := runCLI(args...)
		if code != 0 {
			t.Fatalf("%v: %s", args, errs)
		}
		var rep evalReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%v: %v in %q", args, err, out)
		}
		return rep.Top1
	}
	want := top1("--checkpoint", "byol-resnet18-fmnist")
	for _, engine := range []string{"go", "ort"} {
		if engine == "ort" && onnxrt.Available() != nil {
			continue
		}
		if got := top1("--model", model, "--engine", engine); got != want {
			t.Errorf("--model on %s: top-1 %v, --checkpoint gives %v", engine, got, want)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"eval", "knn", "--model", model, "--checkpoint", "byol-resnet18-fmnist"}, "leave out --checkpoint"},
		{[]string{"eval", "finetune", "--model", model}, "--model applies to knn and linear"},
		{[]string{"eval", "knn", "--model", filepath.Join(t.TempDir(), "missing.onnx")}, "--model"},
	} {
		code, _, errs := runCLI(c.args...)
		if code == 0 || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want one line containing %q", c.args, code, errs, c.want)
		}
	}
}
