package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/weights"
	"github.com/sslzoo/sslzoo/zoo/ssl"
)

// TestTrainJigsawFlags: --permutations reaches the run's spec and the
// method's config; a bad count and images too small for the grid of tiles
// fail with one line naming the flag or the minimum size. (The training,
// kNN and export of a jigsaw run are in TestTrainEveryMethod.)
func TestTrainJigsawFlags(t *testing.T) {
	tinyFashion(t, 16, 8)
	out := t.TempDir()
	code, _, stderr := runCLI(append([]string{"train", "jigsaw"}, tinyArgs(out, "--permutations", "24", "--knn-every", "0")...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	f, err := weights.Read(filepath.Join(out, ssl.FinalFile))
	if err != nil {
		t.Fatal(err)
	}
	var spec ssl.TrainSpec
	var mc ssl.JigsawConfig
	if err := json.Unmarshal([]byte(f.Metadata[ssl.MetaTrain]), &spec); err != nil || spec.Permutations != 24 {
		t.Errorf("spec %+v (%v)", spec, err)
	}
	if err := json.Unmarshal([]byte(f.Metadata[ssl.MetaMethodConfig]), &mc); err != nil || mc.Permutations != 24 || mc.Tile != 4 {
		t.Errorf("method config %+v (%v)", mc, err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{tinyArgs(out, "--permutations", "1"), "--permutations 1: want 2 to 10000"},
		{tinyArgs(out, "--size", "12"), "the minimum image size is 15 px"},
		{tinyArgs(out, "--recipe", "cifar"), "Jigsaw has the paper recipe only"},
	} {
		code, _, errs := runCLI(append([]string{"train", "jigsaw"}, c.args...)...)
		if code == 0 || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want one line containing %q", c.args, code, errs, c.want)
		}
	}
}
