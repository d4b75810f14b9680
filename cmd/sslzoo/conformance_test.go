package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/conformance"
)

// TestConformanceCommand runs two small architectures at one batch size
// and checks the JSON rows; the table form prints one row per model.
func TestConformanceCommand(t *testing.T) {
	code, out, errs := runCLI("conformance", "--json", "--batches", "2", "--no-node", "resnet18-cifar", "bert-mini")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errs, out)
	}
	var rep struct {
		Models []conformance.ModelResult `json:"models"`
		OK     bool                      `json:"ok"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if !rep.OK || len(rep.Models) != 2 || rep.Models[0].Arch != "resnet18-cifar" || rep.Models[1].Arch != "bert-mini" {
		t.Fatalf("report %+v", rep)
	}
	for _, m := range rep.Models {
		if !m.OK || m.GoEngine == nil || m.Batches[0] != 2 || m.Config != "full" {
			t.Errorf("%s: %+v", m.Arch, m)
		}
	}
	code, out, errs = runCLI("conformance", "--batches", "1", "--no-node", "--no-checker", "bert-mini")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !strings.HasPrefix(lines[0], "model") || !strings.HasPrefix(lines[1], "bert-mini") || !strings.HasSuffix(lines[1], " ok") {
		t.Errorf("table:\n%s", out)
	}
	if !strings.Contains(out, "skipped onnx.checker: not requested") && !strings.Contains(out, "skipped onnxruntime-node: not requested") {
		t.Errorf("table does not say what was skipped:\n%s", out)
	}
}

// TestConformanceMismatchExits: a tolerance no float32 engine meets turns
// the row into a mismatch and the exit status non-zero.
func TestConformanceMismatchExits(t *testing.T) {
	code, out, errs := runCLI("conformance", "--batches", "2", "--no-node", "--no-checker", "--tolerance", "1e-12", "bert-mini")
	if code == 0 || !strings.Contains(out, "MISMATCH") || !strings.Contains(errs, "1 of 1 failed: bert-mini") || strings.Count(errs, "\n") != 1 {
		t.Errorf("exit %d, stdout:\n%s\nstderr %q", code, out, errs)
	}
}

// TestConformanceWithoutORT: with the ONNX Runtime library missing the
// suite still runs the Go engine, and says why ONNX Runtime was skipped.
func TestConformanceWithoutORT(t *testing.T) {
	code, out, errs := runWithoutORT(t, "conformance", "--batches", "1", "--no-node", "--no-checker", "bert-mini")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) < 3 || !strings.Contains(lines[1], "skipped") || !strings.HasSuffix(lines[1], " ok") ||
		!strings.Contains(out, "skipped onnxruntime: ONNX Runtime library not found") {
		t.Errorf("exit %d, stdout:\n%s\nstderr %q", code, out, errs)
	}
}

func TestConformanceUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"conformance", "resnet7"}, `unknown model "resnet7"`},
		{[]string{"conformance", "--batches", "1,x"}, "--batches"},
		{[]string{"conformance", "--tolerance", "0"}, "--tolerance must be positive"},
	} {
		code, _, errs := runCLI(c.args...)
		if code == 0 || !strings.Contains(errs, c.want) || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: exit %d, %q", c.args, code, errs)
		}
	}
}
