package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/weights"
	"github.com/sslzoo/sslzoo/zoo/ssl"
)

// TestTrainClustersFlag: --clusters reaches the run's spec and sets
// DeepCluster's k and every DeepCluster v2 head's prototypes; more
// clusters than images, a negative count and the flag on a method with no
// k-means fail with one line. (Training, kNN and export of both methods
// are in TestTrainEveryMethod.)
func TestTrainClustersFlag(t *testing.T) {
	tinyFashion(t, 16, 8)
	for _, c := range []struct {
		method string
		check  func(meta string) bool
	}{
		{"deepcluster", func(meta string) bool {
			var mc ssl.DeepClusterConfig
			return json.Unmarshal([]byte(meta), &mc) == nil && mc.Clusters == 5
		}},
		{"deepclusterv2", func(meta string) bool {
			var mc ssl.DeepClusterV2Config
			return json.Unmarshal([]byte(meta), &mc) == nil && slices.Equal(mc.Prototypes, []int{5, 5, 5})
		}},
	} {
		out := t.TempDir()
		code, _, stderr := runCLI(append([]string{"train", c.method}, tinyArgs(out, "--clusters", "5", "--knn-every", "0", "--local-crops", "0")...)...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", c.method, code, stderr)
		}
		f, err := weights.Read(filepath.Join(out, ssl.FinalFile))
		if err != nil {
			t.Fatal(err)
		}
		var spec ssl.TrainSpec
		if err := json.Unmarshal([]byte(f.Metadata[ssl.MetaTrain]), &spec); err != nil || spec.Clusters != 5 {
			t.Errorf("%s: spec %+v (%v)", c.method, spec, err)
		}
		if !c.check(f.Metadata[ssl.MetaMethodConfig]) {
			t.Errorf("%s: method config %s, want 5 clusters", c.method, f.Metadata[ssl.MetaMethodConfig])
		}
	}
	out := t.TempDir()
	for _, c := range []struct {
		method string
		args   []string
		want   string
	}{
		{"deepcluster", tinyArgs(out, "--clusters", "17"), "17 clusters for 16 images"},
		{"deepclusterv2", tinyArgs(out, "--clusters", "17"), "17 prototypes for 16 images"},
		{"deepcluster", tinyArgs(out, "--clusters", "-1"), "--clusters -1 must not be negative"},
		{"simclr", tinyArgs(out, "--clusters", "5"), "simclr has none"},
	} {
		code, _, errs := runCLI(append([]string{"train", c.method}, c.args...)...)
		if code == 0 || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, c.want) {
			t.Errorf("%s %v: exit %d, stderr %q, want one line containing %q", c.method, c.args, code, errs, c.want)
		}
	}
}
