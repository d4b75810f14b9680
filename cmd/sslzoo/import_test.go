package main

import (
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/weights"
	"github.com/sslzoo/sslzoo/zoo"
)

// The checkpoints are weights/ckptimport's fixtures
// (scripts/gen_import_golden.py); that package checks their features
// against PyTorch, this test the command line around it.
const importFixtures = "../../weights/ckptimport/testdata/"

// TestImportCommand: flags before or after the checkpoint; the summary
// names the backbone, what was dropped and the embedding width; the last
// line is the output path; the file rebuilds the backbone on its own.
func TestImportCommand(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		args func(out string) []string
		want []string
		spec func(zoo.Spec) bool
	}{
		{"flags after the checkpoint", func(out string) []string {
			return []string{"import", "--format", "moco-v3", importFixtures + "moco_v3_vit.pth.tar", "--out", out}
		}, []string{"imported moco-v3 checkpoint moco_v3_vit.pth.tar (zip)", "vit-d24-l2-h12-p8-s32", "12 heads",
			"dropped    module.base_encoder.head.* (16 tensors), module.momentum_encoder.* (46 tensors)", "embedding  24"},
			func(s zoo.Spec) bool { return s.ViT.Heads == 12 }},
		{"flags before the checkpoint", func(out string) []string {
			return []string{"import", "--format", "dino", "--heads", "2", "--out", out, importFixtures + "dino_full_checkpoint.pth"}
		}, []string{`from       checkpoint["teacher"], prefix "backbone."`, `checkpoint["student"]`, "embedding  16"},
			func(s zoo.Spec) bool { return s.ViT.Heads == 2 }},
		{"mixed, legacy format", func(out string) []string {
			return []string{"import", "--format=moco-v2", importFixtures + "moco_v2_800ep_pretrain.pth.tar", "-out", out}
		}, []string{"(legacy)", "resnet50-w0.03125", "module.encoder_k.* (322 tensors)", "embedding  64"},
			func(s zoo.Spec) bool { return s.ResNet.Depth == 50 }},
		{"solo-learn stem", func(out string) []string {
			return []string{"import", importFixtures + "solo_learn/byol-ep=0.ckpt", "--format", "solo-learn", "--out", out}
		}, []string{"conv1 padding 2", "momentum_backbone.* (120 tensors)", "embedding  32"},
			func(s zoo.Spec) bool { return s.ResNet.StemPadding == 2 }},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(dir, strings.Repeat("x", i+1)+".safetensors")
			code, stdout, stderr := runCLI(c.args(out)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, stdout)
				}
			}
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			if last := lines[len(lines)-1]; last != out {
				t.Errorf("last line %q, want the output path %q", last, out)
			}
			f, err := weights.Read(out)
			if err != nil {
				t.Fatal(err)
			}
			spec, ok, err := zoo.SpecFromMetadata(f.Metadata)
			if !ok || err != nil || !c.spec(spec) {
				t.Fatalf("recorded spec %+v (%v)", spec, err)
			}
			if _, err := spec.Build(rand.New(rand.NewPCG(1, 1))); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestImportCommandErrors: one line on stderr, nothing on stdout.
func TestImportCommandErrors(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "x.safetensors")
	ckpt := importFixtures + "torchvision_resnet18.pth"
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"import", ckpt, "--out", out}, "name the checkpoint layout with --format (torchvision, moco-v2"},
		{[]string{"import", "--format", "torchvision", "--out", out}, "name the checkpoint file"},
		{[]string{"import", "--format", "torchvision", ckpt}, "--out F.safetensors is required"},
		{[]string{"import", "--format", "torchvision", ckpt, "--out", filepath.Join(dir, "no", "x.safetensors")}, "folder " + filepath.Join(dir, "no") + " does not exist"},
		{[]string{"import", "--format", "torchvision", ckpt, "--out", out, "extra"}, `unexpected argument "extra"`},
		{[]string{"import", "--format", "torchvision", ckpt, "--heads", "x", "--out", out}, `invalid value "x" for flag -heads`},
		{[]string{"import", "--format", "torchvision", ckpt, "--bogus", "--out", out}, "flag provided but not defined: -bogus"},
		{[]string{"import", "--format", "torchvision", ckpt, "--out", ckpt}, "would overwrite the checkpoint"},
		{[]string{"import", "--format", "simclr", ckpt, "--out", out}, `unknown format "simclr"`},
		{[]string{"import", "--format", "torchvision", "--arch", "resnet18", ckpt, "--out", out},
			"tensor conv1.weight: checkpoint shape [4 3 7 7], --arch resnet18 shape [64 3 7 7]"},
		{[]string{"import", "--format", "moco-v3", ckpt, "--out", out}, `it has no "state_dict" entry; top-level keys: conv1.weight (tensor)`},
		{[]string{"import", "--format", "torchvision", importFixtures + "evil_os_system.pth", "--out", out}, "refused global os.system"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args[1:], " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(c.args...)
			if code == 0 {
				t.Fatalf("exit 0; stdout %q", stdout)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, c.want) || !strings.HasPrefix(stderr, "sslzoo import") {
				t.Errorf("stderr %q, want one line from sslzoo import containing %q", stderr, c.want)
			}
			if stdout != "" {
				t.Errorf("stdout %q", stdout)
			}
		})
	}
}
