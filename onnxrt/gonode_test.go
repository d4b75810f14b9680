package onnxrt

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// runGoNodeTest runs one node test through the Go engine. accepted is false
// when OpenGo refuses the model (an op, attribute or type it does not
// support); then err says why.
func runGoNodeTest(dir string) (accepted bool, err error) {
	s, err := OpenGo(filepath.Join(dir, "model.onnx"))
	if err != nil {
		return false, err
	}
	data := filepath.Join(dir, "test_data_set_0")
	in := make([]*Tensor, len(s.Inputs()))
	for i := range s.Inputs() {
		if in[i], err = loadPB(filepath.Join(data, fmt.Sprintf("input_%d.pb", i))); err != nil {
			return true, err
		}
	}
	out, err := s.Run(in...)
	if err != nil {
		return true, err
	}
	for i, got := range out {
		want, err := loadPB(filepath.Join(data, fmt.Sprintf("output_%d.pb", i)))
		if err != nil {
			return true, err
		}
		// The ONNX backend tests' rtol; atol 1e-6 instead of 1e-7 because
		// the engine's float32 exp/tanh kernels are accurate to a few ulp,
		// which for results near 0 exceeds 1e-7 in absolute terms.
		if err := Close(got, want, 1e-3, 1e-6); err != nil {
			return true, fmt.Errorf("output %s: %w", s.Outputs()[i].Name, err)
		}
	}
	return true, nil
}

// TestGoEngineNodeTests runs ONNX's node tests through the Go engine (the
// ONNX importer). Every test whose model the engine accepts must pass; the
// others must be refused at load time with a reason. The counts go to the
// log (and the README).
func TestGoEngineNodeTests(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join(NodeTestDir, "test_*"))
	if len(dirs) == 0 {
		t.Skipf("no ONNX node tests in %s (install Debian libonnx-testdata)", NodeTestDir)
	}
	sort.Strings(dirs)
	accepted, passed := 0, 0
	refusals := map[string]int{}
	var report strings.Builder
	for _, d := range dirs {
		name := filepath.Base(d)
		ok, err := runGoNodeTest(d)
		if !ok {
			// Group refusals by their reason for the log.
			msg := strings.ReplaceAll(err.Error(), filepath.Join(d, "model.onnx"), "model")
			refusals[msg]++
			continue
		}
		accepted++
		if err != nil {
			t.Errorf("%s: accepted by the Go engine but failed: %v", name, err)
			continue
		}
		passed++
		fmt.Fprintln(&report, name)
	}
	t.Logf("Go engine (%d op types): %d of %d node tests accepted, %d of them pass", len(goOps), accepted, len(dirs), passed)
	if testing.Verbose() {
		t.Logf("passing tests:\n%s", report.String())
		reasons := make([]string, 0, len(refusals))
		for r := range refusals {
			reasons = append(reasons, r)
		}
		sort.Slice(reasons, func(i, j int) bool { return refusals[reasons[i]] > refusals[reasons[j]] })
		for _, r := range reasons[:min(15, len(reasons))] {
			t.Logf("refused %3d: %s", refusals[r], r)
		}
	}
	if os.Getenv("SSLZOO_NODE_REPORT") != "" {
		os.WriteFile(os.Getenv("SSLZOO_NODE_REPORT"), []byte(report.String()), 0o644)
	}
}
