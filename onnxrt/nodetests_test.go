package onnxrt

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/sslzoo/sslzoo/export/onnxpb"
)

// NodeTestDir holds Debian libonnx-testdata's node tests (ONNX 1.12).
const NodeTestDir = "/usr/share/libonnx-testdata/data/node"

var updateNodeFailures = flag.Bool("update-node-failures", false, "rewrite testdata/ort_node_failures.txt from this run")

// nodeTestFailuresFile lists the node tests ONNX Runtime 1.30.0 does not
// pass through this package, with the reason, one "name: reason" a line.
const nodeTestFailuresFile = "testdata/ort_node_failures.txt"

// loadPB reads a test-data file as a tensor.
func loadPB(path string) (*Tensor, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	tp := &onnxpb.TensorProto{}
	if err := proto.Unmarshal(raw, tp); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	t, err := TensorFromProto(tp)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// asBFloat16 re-types uint16 test data as bfloat16 where the model uses
// bfloat16: ONNX 1.12 stored bfloat16 test tensors with data_type UINT16
// (numpy has no bfloat16), bit patterns unchanged.
func asBFloat16(t *Tensor, want DType) {
	if want == BFloat16 && t.DType == Uint16 {
		t.DType = BFloat16
	}
}

// runNodeTest runs one node test's first data set through ORT and compares
// every output with the ONNX backend test tolerances (rtol 1e-3, atol 1e-7).
func runNodeTest(dir string) error {
	s, err := Open(filepath.Join(dir, "model.onnx"), Options{IntraOpThreads: 1})
	if err != nil {
		return err
	}
	defer s.Close()
	data := filepath.Join(dir, "test_data_set_0")
	in := make([]*Tensor, len(s.Inputs()))
	for i, vi := range s.Inputs() {
		if vi.Kind != "tensor" {
			return fmt.Errorf("input %s has type %s", vi.Name, vi.Kind)
		}
		if in[i], err = loadPB(filepath.Join(data, fmt.Sprintf("input_%d.pb", i))); err != nil {
			return err
		}
		asBFloat16(in[i], vi.DType)
	}
	out, err := s.Run(in...)
	if err != nil {
		return err
	}
	for i, got := range out {
		want, err := loadPB(filepath.Join(data, fmt.Sprintf("output_%d.pb", i)))
		if err != nil {
			return err
		}
		asBFloat16(want, got.DType)
		if err := Close(got, want, 1e-3, 1e-7); err != nil {
			return fmt.Errorf("output %s: %w", s.Outputs()[i].Name, err)
		}
	}
	return nil
}

// envDependent marks listed failures that may pass on another machine.
const envDependent = "~"

func readFailureList(t *testing.T) map[string]string {
	f, err := os.Open(nodeTestFailuresFile)
	if err != nil {
		t.Fatalf("%v (regenerate with go test ./onnxrt -run TestORTNodeTests -update-node-failures)", err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, reason, _ := strings.Cut(line, ":")
		m[strings.TrimSpace(name)] = strings.TrimSpace(reason)
		if n, ok := strings.CutPrefix(strings.TrimSpace(name), "~"); ok {
			delete(m, strings.TrimSpace(name))
			m[n] = envDependent
		}
	}
	return m
}

// TestORTNodeTests runs every ONNX node test through ORT from Go. Each test
// must pass unless testdata/ort_node_failures.txt lists it, and each listed
// test must still fail (so the list stays exact).
func TestORTNodeTests(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join(NodeTestDir, "test_*"))
	if len(dirs) == 0 {
		t.Skipf("no ONNX node tests in %s (install Debian libonnx-testdata)", NodeTestDir)
	}
	if err := Available(); err != nil {
		t.Skipf("ONNX Runtime unavailable: %v", err)
	}
	sort.Strings(dirs)
	failures := map[string]string{}
	for _, d := range dirs {
		if err := runNodeTest(d); err != nil {
			// The test's own folder adds nothing to the reason.
			failures[filepath.Base(d)] = strings.ReplaceAll(err.Error(), d+"/", "")
		}
	}
	passed := len(dirs) - len(failures)
	t.Logf("ONNX Runtime %s passed %d of %d node tests", Version(), passed, len(dirs))
	if *updateNodeFailures {
		var b strings.Builder
		fmt.Fprintf(&b, "# ONNX node tests (Debian libonnx-testdata 1.12) that ONNX Runtime %s does not pass\n", Version())
		fmt.Fprintf(&b, "# through sslzoo's onnxrt package: %d of %d pass. Regenerate with\n", passed, len(dirs))
		b.WriteString("#   go test ./onnxrt -run TestORTNodeTests -update-node-failures\n")
		b.WriteString("# A leading ~ marks a failure that depends on the machine (installed locales):\n")
		b.WriteString("# such a test may pass elsewhere.\n")
		names := make([]string, 0, len(failures))
		for n := range failures {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			mark := ""
			if strings.Contains(failures[n], "locale") {
				mark = "~"
			}
			fmt.Fprintf(&b, "%s%s: %s\n", mark, n, strings.ReplaceAll(failures[n], "\n", " "))
		}
		if err := os.WriteFile(nodeTestFailuresFile, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	expected := readFailureList(t)
	for _, d := range dirs {
		n := filepath.Base(d)
		reason, want := expected[n]
		got, failed := failures[n]
		switch {
		case failed && !want:
			t.Errorf("%s: %s", n, got)
		case !failed && want && reason != envDependent:
			t.Errorf("%s now passes; remove it from %s", n, nodeTestFailuresFile)
		}
	}
}
