package load

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/weights"
	"github.com/sslzoo/sslzoo/zoo"
	"github.com/sslzoo/sslzoo/zoo/ssl"
)

// smallResNet is a 1-channel ResNet-18 (CIFAR stem) at width 0.125: a
// shape no registry name gives, so only its recorded config rebuilds it.
func smallResNet(t *testing.T) (zoo.Spec, zoo.Backbone) {
	t.Helper()
	spec, err := zoo.Arch("resnet18-cifar")
	if err != nil {
		t.Fatal(err)
	}
	spec.ResNet.Width, spec.ResNet.InChannels = 0.125, 1
	m, err := spec.Build(rand.New(rand.NewPCG(7, 7)))
	if err != nil {
		t.Fatal(err)
	}
	return spec, m
}

// writeState saves m's state_dict with every key under prefix.
func writeState(t *testing.T, path string, m nn.Module, prefixes []string, meta map[string]string) {
	t.Helper()
	out := map[string]*weights.Tensor{}
	for k, v := range nn.StateTensors(m) {
		for _, p := range prefixes {
			out[p+k] = v
		}
	}
	if err := weights.Write(path, out, meta); err != nil {
		t.Fatal(err)
	}
}

// sameState fails unless a and b hold the same tensors under the same names.
func sameState(t *testing.T, a, b nn.Module) {
	t.Helper()
	sa, sb := nn.StateTensors(a), nn.StateTensors(b)
	if len(sa) != len(sb) {
		t.Fatalf("%d tensors, want %d", len(sb), len(sa))
	}
	for k, ta := range sa {
		tb, ok := sb[k]
		if !ok || !reflect.DeepEqual(ta.Shape, tb.Shape) || string(ta.Data) != string(tb.Data) {
			t.Fatalf("tensor %s differs after loading", k)
		}
	}
}

// A file that records its architecture rebuilds exactly it, with its
// weights, preprocessing, method and hash, and refuses another --arch.
func TestFileRecordedArch(t *testing.T) {
	spec, m := smallResNet(t)
	path := filepath.Join(t.TempDir(), "w.safetensors")
	pre := `{"channels":"L","size":[28,28],"resize_size":32,"crop":"center","scale":0.00392156862745098,"mean":[0.5],"std":[0.25]}`
	writeState(t, path, m, []string{""}, map[string]string{zoo.ArchConfigKey: spec.ConfigJSON(), ssl.MetaMethod: "byol", ssl.MetaPreprocess: pre})
	b, err := File(path, Options{Seed: 99})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(b.Spec, spec) {
		t.Errorf("spec %+v, want %+v", b.Spec, spec)
	}
	sameState(t, m, b.Model)
	raw, _ := os.ReadFile(path)
	if sum := sha256.Sum256(raw); b.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("sha256 %s, want %x", b.SHA256, sum)
	}
	if b.Method != "byol" || b.Preprocess == nil || b.Preprocess.ResizeSize != 32 || b.Preprocess.Channels != "L" || b.Preprocess.Std[0] != 0.25 {
		t.Errorf("method %q, preprocess %+v", b.Method, b.Preprocess)
	}
	if b.Tokenizer != nil {
		t.Error("an image backbone came with a tokenizer")
	}
	if _, err := File(path, Options{Arch: "resnet50"}); err == nil || !strings.Contains(err.Error(), "not --arch resnet50") {
		t.Errorf("another --arch: %v", err)
	}
}

// A plain state_dict needs an architecture name, and its tensors may sit
// under one prefix (DataParallel's "module.") that is found alone.
func TestFilePlainStateDict(t *testing.T) {
	spec, err := zoo.Arch("bert-tiny")
	if err != nil {
		t.Fatal(err)
	}
	m, err := spec.Build(rand.New(rand.NewPCG(3, 3)))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "plain.safetensors")
	writeState(t, path, m, []string{"module."}, nil)
	if _, err := File(path, Options{}); err == nil || !strings.Contains(err.Error(), "records no architecture") {
		t.Fatalf("no --arch: %v", err)
	}
	b, err := File(path, Options{Arch: "bert-tiny"})
	if err != nil {
		t.Fatal(err)
	}
	sameState(t, m, b.Model)
	if b.Preprocess != nil || b.Method != "" {
		t.Errorf("a bare state_dict gave preprocess %+v, method %q", b.Preprocess, b.Method)
	}
}

// Two prefixes that each hold a whole backbone (a method's online and
// momentum encoders) need --prefix; the one named is the one loaded; a
// missing tensor is named.
func TestFilePrefixes(t *testing.T) {
	spec, online := smallResNet(t)
	_, momentum := smallResNet(t)
	for _, p := range nn.StateOf(momentum).Params {
		p.Var.Value.Data[0] += 1
	}
	meta := map[string]string{zoo.ArchConfigKey: spec.ConfigJSON()}
	dir := t.TempDir()
	path := filepath.Join(dir, "two.safetensors")
	out := map[string]*weights.Tensor{}
	for k, v := range nn.StateTensors(online) {
		out["backbone."+k] = v
	}
	for k, v := range nn.StateTensors(momentum) {
		out["momentum_backbone."+k] = v
	}
	if err := weights.Write(path, out, meta); err != nil {
		t.Fatal(err)
	}
	if _, err := File(path, Options{}); err == nil || !strings.Contains(err.Error(), "several prefixes") || !strings.Contains(err.Error(), "momentum_backbone.") {
		t.Fatalf("two backbones: %v", err)
	}
	b, err := File(path, Options{Prefix: "momentum_backbone.", PrefixSet: true})
	if err != nil {
		t.Fatal(err)
	}
	sameState(t, momentum, b.Model)

	var dropped string
	for k := range out {
		if strings.HasPrefix(k, "backbone.") && strings.HasSuffix(k, ".weight") {
			dropped = k
			break
		}
	}
	delete(out, dropped)
	for k := range out {
		if strings.HasPrefix(k, "momentum_backbone.") {
			delete(out, k)
		}
	}
	if err := weights.Write(path, out, meta); err != nil {
		t.Fatal(err)
	}
	missing := strings.TrimPrefix(dropped, "backbone.")
	if _, err := File(path, Options{Prefix: "backbone.", PrefixSet: true}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing %s: %v", missing, err)
	}
}

// Hostile files fail with the file named: not safetensors, bad recorded
// config, bad preprocess JSON.
func TestFileBadInput(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.safetensors")
	if err := os.WriteFile(junk, []byte("\xff\xff\xff\xff\xff\xff\xff\x7fnot a header"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := File(junk, Options{Arch: "bert-tiny"}); err == nil || !strings.Contains(err.Error(), "junk.safetensors") {
		t.Errorf("junk: %v", err)
	}
	spec, m := smallResNet(t)
	for name, meta := range map[string]map[string]string{
		"config":     {zoo.ArchConfigKey: `{"family":"resnet"`},
		"preprocess": {zoo.ArchConfigKey: spec.ConfigJSON(), ssl.MetaPreprocess: `{"size":`},
	} {
		path := filepath.Join(dir, name+".safetensors")
		writeState(t, path, m, []string{""}, meta)
		if _, err := File(path, Options{}); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("bad %s metadata: %v", name, err)
		}
	}
}

// A recorded architecture far larger than the file's tensors is refused
// before anything is built: a few bytes of JSON could otherwise ask for a
// ViT of terabytes and end the process out of memory. The smaller one the
// file does hold still loads.
func TestFileArchLargerThanFile(t *testing.T) {
	dir := t.TempDir()
	spec, m := smallResNet(t)
	huge := zoo.Spec{Name: "vit-huge-lie", Family: "vit", ViT: zoo.ViTConfig{Dim: 1 << 16, Depth: 100, Heads: 1}}
	wide := spec
	wide.ResNet.Width = 64 // 4096x the values of the width-0.125 weights in the file
	for _, s := range []zoo.Spec{huge, wide} {
		path := filepath.Join(dir, s.Name+".safetensors")
		writeState(t, path, m, []string{""}, map[string]string{zoo.ArchConfigKey: s.ConfigJSON()})
		_, err := File(path, Options{})
		if err == nil || !strings.Contains(err.Error(), "the recorded architecture is corrupt") || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v", s.Name, err)
		}
	}
	path := filepath.Join(dir, "ok.safetensors")
	writeState(t, path, m, []string{""}, map[string]string{zoo.ArchConfigKey: spec.ConfigJSON()})
	if _, err := File(path, Options{}); err != nil {
		t.Errorf("the file's own architecture: %v", err)
	}
}
