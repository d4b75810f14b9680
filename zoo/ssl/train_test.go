package ssl

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/data/preprocess"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/weights"
	"github.com/sslzoo/sslzoo/zoo"
)

// squares is an in-memory set of n one-channel 16x16 images in two
// classes: a bright square top-left or bottom-right on noise.
func squares(n int, seed uint64) *data.Images {
	rng := rand.New(rand.NewPCG(seed, 1))
	ds := &data.Images{Name: "squares", N: n, C: 1, H: 16, W: 16, Pix: make([]uint8, n*256), Labels: make([]int, n),
		Classes: []string{"top-left", "bottom-right"}}
	for i := range n {
		c := i % 2
		ds.Labels[i] = c
		for r := range 16 {
			for col := range 16 {
				v := rng.IntN(60)
				if (c == 0 && r < 8 && col < 8) || (c == 1 && r >= 8 && col >= 8) {
					v += 180
				}
				ds.Pix[i*256+r*16+col] = uint8(v)
			}
		}
	}
	return ds
}

// tinyConfig trains a 1/16-width ResNet-18 on 16x16 crops, 8 images a
// step.
func tinyConfig(t *testing.T, method string) TrainConfig {
	return TrainConfig{Method: method, Data: "squares", Arch: "resnet18-cifar", Width: 0.0625, Size: 16, Epochs: 2, Batch: 8,
		Seed: 3, Workers: 2, Out: t.TempDir(), CheckpointEvery: 1, LogEvery: 2, Warn: func(err error) { t.Errorf("warning: %v", err) }}
}

func readRecords(t *testing.T, path string) []MetricsRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []MetricsRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r MetricsRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("metrics line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// TestTrainHooksAndFiles: the hooks see every step, epoch and checkpoint;
// the metrics file holds what the epoch hook saw; the final weights carry
// the spec, the exact architecture (rebuildable from the metadata alone)
// and the preprocessing.
func TestTrainHooksAndFiles(t *testing.T) {
	cfg := tinyConfig(t, "simclr")
	cfg.KNN = &KNNMonitor{Test: squares(8, 9), Bank: 16, Query: 8}
	var starts []TrainStart
	var steps []TrainStep
	var epochs []TrainEpoch
	var ckpts []int64
	res, err := Train(t.Context(), cfg, squares(24, 2), TrainHooks{
		Start:      func(s TrainStart) { starts = append(starts, s) },
		Step:       func(s TrainStep) { steps = append(steps, s) },
		Epoch:      func(e TrainEpoch) { epochs = append(epochs, e) },
		Checkpoint: func(path string, step int64) { ckpts = append(ckpts, step) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(starts) != 1 || starts[0].TotalSteps != 6 || starts[0].StepsPerEpoch != 3 || starts[0].StartStep != 0 || starts[0].Images != 24 {
		t.Fatalf("start hooks %+v", starts)
	}
	if len(steps) != 6 {
		t.Fatalf("%d step hooks, want 6", len(steps))
	}
	for i, s := range steps {
		if s.Step != int64(i+1) || s.Epoch != i/3+1 || s.Images != 8 || !(s.Loss > 0) || !(s.LR >= 0) || !(s.EpochImgPerS > 0) {
			t.Errorf("step hook %d: %+v", i, s)
		}
	}
	if !slices.Equal(ckpts, []int64{3, 6, 6}) {
		t.Errorf("checkpoints at steps %v, want 3, 6 (epochs) and 6 (end)", ckpts)
	}
	recs := readRecords(t, res.Metrics)
	var kinds []string
	for _, r := range recs {
		kinds = append(kinds, fmt.Sprintf("%s:%d", r.Kind, r.Step))
	}
	if strings.Join(kinds, " ") != "step:2 epoch:3 step:5 epoch:6" {
		t.Fatalf("metrics records %v", kinds)
	}
	if len(epochs) != 2 {
		t.Fatalf("%d epoch hooks", len(epochs))
	}
	for i, e := range epochs {
		r := recs[2*i+1]
		r.Time = ""
		if e.KNN == nil || e.KNN.N != 8 || e.Record.KNNTop1 == nil || *e.Record.KNNTop1 != e.KNN.Top1 || e.Record.Epoch != i+1 {
			t.Errorf("epoch hook %d: %+v", i, e)
		}
		a, _ := json.Marshal(r)
		b, _ := json.Marshal(e.Record)
		if string(a) != string(b) {
			t.Errorf("epoch %d: file %s, hook %s", i+1, a, b)
		}
	}

	f, err := weights.Read(res.Final)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range f.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{MetaBackbone, MetaEmbedDim, MetaMethod, MetaMethodConfig, MetaPreprocess, MetaSteps, MetaTrain, zoo.ArchConfigKey}
	slices.Sort(want)
	if !slices.Equal(keys, want) || f.Metadata[MetaSteps] != "6" || f.Metadata[MetaEmbedDim] != "32" || f.Metadata[MetaMethod] != "simclr" {
		t.Fatalf("final metadata %v", f.Metadata)
	}
	arch, ok, err := zoo.SpecFromMetadata(f.Metadata)
	if err != nil || !ok || arch.ResNet.Width != 0.0625 || arch.ResNet.InChannels != 1 || arch.Name != "resnet18-cifar" {
		t.Fatalf("arch config %+v (%v, %v)", arch, ok, err)
	}
	b, err := arch.Build(rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := nn.LoadState(b, f.Tensors, true); err != nil {
		t.Fatalf("the backbone rebuilt from %s does not take the final weights: %v", zoo.ArchConfigKey, err)
	}
	var pp preprocess.Spec
	if err := json.Unmarshal([]byte(f.Metadata[MetaPreprocess]), &pp); err != nil {
		t.Fatal(err)
	}
	if err := pp.Validate(); err != nil || pp.Channels != preprocess.L || pp.ResizeSize != 16 || pp.Size != [2]int{16, 16} || pp.Crop != "center" {
		t.Errorf("preprocess %+v (%v)", pp, err)
	}
	ck, err := weights.Read(res.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Metadata[CheckpointMetaArchConfig] != f.Metadata[zoo.ArchConfigKey] || ck.Metadata[CheckpointMetaTrain] != f.Metadata[MetaTrain] {
		t.Errorf("checkpoint metadata %v", ck.Metadata)
	}

	// Both files give back the trained backbone.
	trained := nn.StateTensors(res.Method.Backbone())
	for _, path := range []string{res.Final, res.Checkpoint} {
		enc, spec, err := LoadEncoder(path, rand.New(rand.NewPCG(1, 1)), false)
		if err != nil {
			t.Fatal(err)
		}
		if spec.Method != "simclr" || spec.InChannels != 1 || spec.Size != 16 {
			t.Errorf("%s: spec %+v", path, spec)
		}
		for name, ts := range nn.StateTensors(enc) {
			a, _ := ts.Float32()
			b, _ := trained[name].Float32()
			if !slices.Equal(a.Data, b.Data) {
				t.Fatalf("%s: %s differs from the trained backbone", path, name)
			}
		}
	}
}

// TestTrainNaNStops: a non-finite loss stops the run naming the step and
// the last good checkpoint.
func TestTrainNaNStops(t *testing.T) {
	cfg := tinyConfig(t, "mocov3")
	cfg.Epochs = 3
	cfg.step = func(m Method, tp *autograd.Tape, v []*tensor.Tensor) (float32, error) {
		if m.Steps() == 4 {
			// What a method reports for a non-finite loss.
			return float32(math.NaN()), errors.New("mocov3 step 4: loss is NaN; weights left as they were")
		}
		return m.Step(tp, v)
	}
	_, err := Train(t.Context(), cfg, squares(24, 2), TrainHooks{})
	want := "loss is NaN at step 4 (epoch 2); stopped; last good checkpoint: " + filepath.Join(cfg.Out, CheckpointFile)
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
	if _, err := os.Stat(filepath.Join(cfg.Out, FinalFile)); err == nil {
		t.Error("a stopped run wrote final weights")
	}
}

// TestTrainInterruptResume: a run stopped by its context or a signal saves
// a checkpoint; resuming it reproduces the uninterrupted run, and a resume
// with another spec is refused.
func TestTrainInterruptResume(t *testing.T) {
	ds := squares(24, 2)
	straight := tinyConfig(t, "simclr")
	want, err := Train(t.Context(), straight, ds, TrainHooks{})
	if err != nil {
		t.Fatal(err)
	}
	for _, how := range []string{"context", "signal"} {
		t.Run(how, func(t *testing.T) {
			cut := tinyConfig(t, "simclr")
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			sig := make(chan os.Signal, 1)
			cut.Interrupt = sig
			_, err := Train(ctx, cut, ds, TrainHooks{Step: func(s TrainStep) {
				if s.Step == 4 {
					if how == "context" {
						cancel()
					} else {
						sig <- syscall.SIGTERM
					}
				}
			}})
			var ie *InterruptedError
			ckpt := filepath.Join(cut.Out, CheckpointFile)
			if !errors.As(err, &ie) || !errors.Is(err, ErrInterrupted) || ie.Step != 4 || ie.Epoch != 2 || ie.Checkpoint != ckpt {
				t.Fatalf("error %v (%+v)", err, ie)
			}
			if (how == "context") != errors.Is(err, context.Canceled) || (how == "signal") != (ie.Signal == syscall.SIGTERM) {
				t.Errorf("cause of %v", err)
			}
			if _, err := os.Stat(filepath.Join(cut.Out, FinalFile)); err == nil {
				t.Fatal("an interrupted run wrote final weights")
			}

			bad := cut
			bad.Resume, bad.Interrupt, bad.Batch = ckpt, nil, 4
			var re *ResumeError
			if _, err := Train(t.Context(), bad, ds, TrainHooks{}); !errors.As(err, &re) || !strings.Contains(err.Error(), "different run") {
				t.Fatalf("mismatched resume: %v", err)
			}

			cont := cut
			cont.Resume, cont.Interrupt = ckpt, nil
			var start int64 = -1
			got, err := Train(t.Context(), cont, ds, TrainHooks{Start: func(s TrainStart) { start = s.StartStep }})
			if err != nil {
				t.Fatal(err)
			}
			if start != 4 || got.Steps != 6 {
				t.Fatalf("resumed at step %d, ended at %d", start, got.Steps)
			}
			a, b := nn.StateTensors(want.Method.Backbone()), nn.StateTensors(got.Method.Backbone())
			var worst float64
			for name, ta := range a {
				fa, _ := ta.Float32()
				fb, _ := b[name].Float32()
				for i := range fa.Data {
					worst = math.Max(worst, math.Abs(float64(fa.Data[i]-fb.Data[i])))
				}
			}
			if worst > 1e-4 {
				t.Fatalf("resumed run differs from the uninterrupted one by %g", worst)
			}
			// The resumed run appended to the interrupted run's metrics.
			if recs := readRecords(t, got.Metrics); recs[len(recs)-1].Kind != "epoch" || recs[len(recs)-1].Step != 6 || recs[0].Step != 2 {
				t.Fatalf("metrics %+v", recs)
			}
		})
	}
}

// TestTrainConfigErrors: every bad configuration is one error naming it,
// before anything is written.
func TestTrainConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		edit func(*TrainConfig)
		ds   data.Dataset
		want string
	}{
		{"method", func(c *TrainConfig) { c.Method = "ibot" }, nil, `unknown method "ibot"`},
		{"out", func(c *TrainConfig) { c.Out = "" }, nil, "Out"},
		{"epochs", func(c *TrainConfig) { c.Epochs = 0 }, nil, "0 epochs"},
		{"batch", func(c *TrainConfig) { c.Batch = 1 }, nil, "batch 1"},
		{"width", func(c *TrainConfig) { c.Width = math.Inf(1) }, nil, "width +Inf"},
		{"size", func(c *TrainConfig) { c.Size = 4 }, nil, "size 4"},
		{"lr", func(c *TrainConfig) { c.LR = math.NaN() }, nil, "learning rate NaN"},
		{"negative", func(c *TrainConfig) { c.Queue = -1 }, nil, "Queue -1"},
		{"recipe", func(c *TrainConfig) { c.Recipe = "imagenet" }, nil, `unknown recipe "imagenet"`},
		{"mae recipe", func(c *TrainConfig) { c.Method, c.Arch, c.Recipe = "mae", "vit-tiny", RecipeCIFAR }, nil, "MAE has the paper recipe only"},
		{"mae resnet", func(c *TrainConfig) { c.Method = "mae" }, nil, "mae needs a ViT backbone"},
		{"arch", func(c *TrainConfig) { c.Arch = "resnet7" }, nil, `unknown architecture "resnet7"`},
		{"text arch", func(c *TrainConfig) { c.Arch = "bert-mini" }, nil, "image backbones"},
		{"vit size", func(c *TrainConfig) { c.Arch, c.Size = "vit-tiny", 18 }, nil, "divisible by its patch size 4"},
		{"knn", func(c *TrainConfig) { c.KNN = &KNNMonitor{} }, nil, "no test images"},
		{"norm", func(c *TrainConfig) { c.Norm = NormFor("cifar10") }, nil, "3 means and 3 stds for 1-channel images"},
		{"empty", func(c *TrainConfig) {}, squares(0, 1), "squares holds no images"},
		{"small", func(c *TrainConfig) { c.Limit = 4 }, nil, "4 images, fewer than one batch of 8"},
		{"nil data", func(c *TrainConfig) {}, (*data.Images)(nil), "no dataset"},
		{"resume", func(c *TrainConfig) { c.Resume = filepath.Join(c.Out, "missing.safetensors") }, nil, "missing.safetensors"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := tinyConfig(t, "simclr")
			c.edit(&cfg)
			ds := c.ds
			if ds == nil {
				ds = squares(16, 1)
			} else if im, ok := ds.(*data.Images); ok && im == nil {
				ds = nil
			}
			_, err := Train(t.Context(), cfg, ds, TrainHooks{})
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v, want one line containing %q", err, c.want)
			}
			if cfg.Out != "" {
				if _, err := os.Stat(filepath.Join(cfg.Out, MetricsFile)); err == nil {
					t.Error("a refused run wrote its metrics file")
				}
			}
		})
	}
}

// TestTrainSpecJSON: the spec marshals exactly as the checkpoints of runs
// made before ssl.Train existed recorded it, so they still resume (resume
// compares the bytes). The strings are train.spec values of checkpoints
// written by that binary: testdata/trainspec_v1.txt says how.
func TestTrainSpecJSON(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "trainspec_v1.txt"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(string(raw)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		n++
		var s TrainSpec
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatal(err)
		}
		if b, _ := json.Marshal(s); string(b) != line {
			t.Errorf("round trip:\n got %s\nwant %s", b, line)
		}
	}
	if n < 3 {
		t.Fatalf("%d specs in the fixture", n)
	}
}

// TestNewRecipes: New's run options reach the method's configuration.
func TestNewRecipes(t *testing.T) {
	enc := func() Encoder {
		b, err := zoo.NewResNet(zoo.ResNetConfig{Depth: 18, Stem: "cifar", Width: 0.0625}, rand.New(rand.NewPCG(1, 1)))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	run := Run{Batch: 64, StepsPerEpoch: 10, Epochs: 100}
	paper, err := New("mocov2", enc(), run, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	r := run
	r.Recipe, r.LR, r.Queue = RecipeCIFAR, 0.5, 128
	tuned, err := New("mocov2", enc(), r, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultMoCoV2Config(64, 10, 100)
	want.HiddenDim = 32 // the backbone's width, filled in by NewMoCoV2
	if p := paper.Configuration().(MoCoV2Config); !reflect.DeepEqual(p, want) {
		t.Errorf("paper recipe %+v, want %+v", p, want)
	}
	want.UseCIFARRecipe(64, 10, 100)
	want.Optim.FinalLR *= 0.5 / want.Optim.LR
	want.Optim.LR, want.QueueSize = 0.5, 128
	if c := tuned.Configuration().(MoCoV2Config); !reflect.DeepEqual(c, want) || c.Optim.WarmupSteps == 0 {
		t.Errorf("cifar recipe with overrides %+v, want %+v", c, want)
	}
	vit, err := zoo.NewViT(zoo.ViTConfig{ImageSize: 16, PatchSize: 4, InChannels: 1, Dim: 16, Depth: 1, Heads: 2}, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	r = run
	r.LR = 1e-3
	m, err := New("mae", vit, r, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if mc := m.Configuration().(MAEConfig); mc.Optim.LR != 1e-3 || mc.Optim.FinalLR != 0 {
		t.Errorf("mae config %+v", mc)
	}
	for _, c := range []struct {
		name string
		b    Encoder
		run  Run
		want string
	}{
		{"mae", enc(), run, "needs a ViT backbone"},
		{"mae", vit, Run{Batch: 64, StepsPerEpoch: 10, Epochs: 2, Recipe: RecipeCIFAR}, "paper recipe only"},
		{"simclr", enc(), Run{Batch: 64, StepsPerEpoch: 10, Epochs: 2, Recipe: "x"}, `unknown recipe "x"`},
		{"simclr", enc(), Run{Batch: 64, StepsPerEpoch: 10, Epochs: 2, LR: -1}, "learning rate -1"},
		{"ibot", enc(), run, `unknown method "ibot"`},
	} {
		if _, err := New(c.name, c.b, c.run, rand.New(rand.NewPCG(1, 1))); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %+v: %v, want %q", c.name, c.run, err, c.want)
		}
	}
}

// TestTrainSpecPool: "mean" gives a ViT that keeps the class-token ViT's
// final norm (so the weights of either load into it), and pooling is
// refused where it means nothing.
func TestTrainSpecPool(t *testing.T) {
	spec := TrainSpec{Method: "mae", Arch: "vit-tiny-l6", Width: 1, InChannels: 1, Size: 28}
	for pool, want := range map[string]string{"": "cls", PoolCLS: "cls", PoolMean: "norm-mean"} {
		spec.Pool = pool
		a, err := spec.ArchSpec()
		if err != nil || a.ViT.Pool != want {
			t.Errorf("pool %q: ViT pool %q (%v), want %q", pool, a.ViT.Pool, err, want)
		}
	}
	spec.Pool = "max"
	if _, err := spec.ArchSpec(); err == nil || !strings.Contains(err.Error(), `pooling "max"`) {
		t.Errorf("pool max: %v", err)
	}
	rn := TrainSpec{Method: "simclr", Arch: "resnet18-cifar", Width: 0.25, InChannels: 1, Size: 28, Pool: PoolMean}
	if _, err := rn.ArchSpec(); err == nil || !strings.Contains(err.Error(), "applies to ViTs") {
		t.Errorf("a pooled ResNet: %v", err)
	}
	// The spec without a pool marshals as before (resume compares bytes).
	if b, _ := json.Marshal(TrainSpec{}); strings.Contains(string(b), "pool") {
		t.Errorf("empty pool is written: %s", b)
	}
}

// TestRewindMetrics: resuming from step 4 keeps the records up to it and
// drops the later ones and a torn last line; a file already at the step, or
// none, is left alone.
func TestRewindMetrics(t *testing.T) {
	path := filepath.Join(t.TempDir(), MetricsFile)
	if err := rewindMetrics(path, 4); err != nil {
		t.Fatalf("no file: %v", err)
	}
	kept := `{"kind":"step","step":2}` + "\n" + `{"kind":"epoch","step":4}` + "\n"
	for _, tail := range []string{"", `{"kind":"step","step":6}` + "\n", `{"kind":"step","step":6}` + "\n" + `{"kind":"st`} {
		if err := os.WriteFile(path, []byte(kept+tail), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := rewindMetrics(path, 4); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(path); string(b) != kept {
			t.Errorf("after %q: %q, want %q", tail, b, kept)
		}
	}
}
