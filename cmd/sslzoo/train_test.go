package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/weights"
	"github.com/sslzoo/sslzoo/zoo/ssl"
)

// tinyFashion writes a Fashion-MNIST-shaped IDX dataset (train and t10k
// splits) of 28x28 images in two classes (a bright square top-left or
// bottom-right on noise) and points $SSLZOO_FASHION_MNIST_DIR at it.
func tinyFashion(t *testing.T, nTrain, nTest int) {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 1))
	write := func(split string, n int) {
		img := make([]byte, n*784)
		lab := make([]byte, n)
		for i := range n {
			c := i % 2
			lab[i] = byte(c)
			for r := range 28 {
				for col := range 28 {
					v := rng.IntN(60)
					if (c == 0 && r < 14 && col < 14) || (c == 1 && r >= 14 && col >= 14) {
						v += 180
					}
					img[i*784+r*28+col] = byte(v)
				}
			}
		}
		writeIDXGz(t, filepath.Join(dir, split+"-images-idx3-ubyte.gz"), []int{n, 28, 28}, img)
		writeIDXGz(t, filepath.Join(dir, split+"-labels-idx1-ubyte.gz"), []int{n}, lab)
	}
	write("train", nTrain)
	write("t10k", nTest)
	t.Setenv(data.EnvFashionMNISTDir, dir)
}

// tinyArgs are the flags of a fast run: a 1/16-width ResNet-18 on 16x16
// crops.
func tinyArgs(out string, extra ...string) []string {
	return append([]string{"--data", "fashion-mnist", "--width", "0.0625", "--size", "16", "--batch", "8",
		"--epochs", "1", "--out", out, "--knn-bank", "16", "--knn-query", "8", "--workers", "2", "--log-every", "1"}, extra...)
}

func readMetrics(t *testing.T, dir string) []ssl.MetricsRecord {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, ssl.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []ssl.MetricsRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r ssl.MetricsRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("metrics line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// Every method trains one epoch end to end through the CLI, writes its
// files, and the result evaluates and exports.
func TestTrainEveryMethod(t *testing.T) {
	tinyFashion(t, 32, 16)
	for _, m := range trainMethods {
		t.Run(m, func(t *testing.T) {
			out := t.TempDir()
			args, channels, trainN, testN := tinyArgs(out), 1, 32, 16
			if m == "colorization" {
				// It needs colour: a folder set, whose every image is in both splits.
				args[1], channels, trainN, testN = "folder:"+colourFolder(t, 16), 3, 32, 32
			}
			code, stdout, stderr := runCLI(append([]string{"train", m}, args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if !strings.Contains(stdout, "wrote "+filepath.Join(out, ssl.FinalFile)) {
				t.Fatalf("stdout %q", stdout)
			}
			recs := readMetrics(t, out)
			var steps, epochs int
			for _, r := range recs {
				switch r.Kind {
				case "step":
					steps++
					// SimSiam's loss is a negative cosine; the others' are positive.
					lossOK := r.Loss > 0
					if m == "simsiam" {
						lossOK = r.Loss >= -1 && r.Loss <= 1
					}
					if !lossOK || math.IsNaN(r.Loss) || !(r.ImgPerS > 0) {
						t.Errorf("step record %+v", r)
					}
				case "epoch":
					epochs++
					if r.KNNTop1 == nil || r.Step != 4 || r.Epoch != 1 {
						t.Errorf("epoch record %+v", r)
					}
				}
			}
			if steps != 4 || epochs != 1 {
				t.Fatalf("%d step and %d epoch records, want 4 and 1", steps, epochs)
			}
			f, err := weights.Read(filepath.Join(out, ssl.FinalFile))
			if err != nil {
				t.Fatal(err)
			}
			if f.Metadata[ssl.MetaMethod] != m || f.Metadata[ssl.MetaBackbone] != "resnet18-cifar" || f.Metadata[ssl.MetaEmbedDim] != "32" {
				t.Fatalf("metadata %v", f.Metadata)
			}
			var spec ssl.TrainSpec
			if err := json.Unmarshal([]byte(f.Metadata[ssl.MetaTrain]), &spec); err != nil || spec.InChannels != channels || spec.Size != 16 || spec.Width != 0.0625 {
				t.Fatalf("spec %+v (%v)", spec, err)
			}
			if _, ok := f.Tensors["conv1.weight"]; !ok {
				t.Fatalf("final weights lack conv1.weight: %v", f.Names()[:3])
			}
			code, stdout, stderr = runCLI("eval", "knn", "--checkpoint", filepath.Join(out, ssl.FinalFile), "--data", args[1], "--json", "--workers", "2")
			if code != 0 {
				t.Fatalf("eval exit %d: %s", code, stderr)
			}
			var rep evalReport
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil || rep.Test != testN || rep.Train != trainN || rep.Method != m {
				t.Fatalf("eval report %q (%v)", stdout, err)
			}
			// The backbone exports from the final weights alone.
			onnxPath := filepath.Join(out, "backbone.onnx")
			if code, _, stderr = runCLI("export", "--weights", filepath.Join(out, ssl.FinalFile), "--out", onnxPath); code != 0 {
				t.Fatalf("export exit %d: %s", code, stderr)
			}
			if fi, err := os.Stat(onnxPath); err != nil || fi.Size() == 0 {
				t.Fatalf("export wrote no model: %v", err)
			}
		})
	}
}

// --recipe cifar reaches the method's config (and so the metadata the
// PyTorch twin reads) and the run's spec; the paper recipe leaves the spec
// without a recipe field, as runs before the flag wrote it.
func TestTrainCIFARRecipe(t *testing.T) {
	tinyFashion(t, 16, 8)
	for _, recipe := range []string{"cifar", "paper"} {
		out := t.TempDir()
		code, stdout, stderr := runCLI(append([]string{"train", "byol"}, tinyArgs(out, "--recipe", recipe, "--knn-every", "0")...)...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", recipe, code, stderr)
		}
		if !strings.Contains(stdout, recipe+" recipe") {
			t.Errorf("%s: banner %q does not name the recipe", recipe, stdout)
		}
		f, err := weights.Read(filepath.Join(out, ssl.FinalFile))
		if err != nil {
			t.Fatal(err)
		}
		var cfg ssl.BYOLConfig
		if err := json.Unmarshal([]byte(f.Metadata[ssl.MetaMethodConfig]), &cfg); err != nil {
			t.Fatal(err)
		}
		cifar := recipe == "cifar"
		if cifar != (cfg.BaseMomentum == 0.99 && cfg.Optim.ClipTrustRatio && cfg.Optim.TrustCoefficient == 0.02 && cfg.Optim.LR == 8.0/256) {
			t.Errorf("%s: method config %+v", recipe, cfg)
		}
		// The banner gives the schedule's peak rate, not the warmup's first (0).
		if want := fmt.Sprintf("LARS lr %.4g\n", cfg.Optim.LR); !strings.Contains(stdout, want) {
			t.Errorf("%s: banner %q lacks %q", recipe, stdout, want)
		}
		if cifar != strings.Contains(f.Metadata[ssl.MetaTrain], `"recipe":"cifar"`) {
			t.Errorf("%s: spec %s", recipe, f.Metadata[ssl.MetaTrain])
		}
	}
}

// The trained weights differ from a fresh backbone's; the checkpoint's
// backbone equals the final weights.
func TestTrainEvalProtocols(t *testing.T) {
	tinyFashion(t, 32, 16)
	out := t.TempDir()
	if code, _, stderr := runCLI(append([]string{"train", "byol"}, tinyArgs(out, "--knn-every", "0")...)...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	final := filepath.Join(out, ssl.FinalFile)
	trained, _, err := ssl.LoadEncoder(final, rand.New(rand.NewPCG(1, 1)), false)
	if err != nil {
		t.Fatal(err)
	}
	fromCkpt, _, err := ssl.LoadEncoder(filepath.Join(out, ssl.CheckpointFile), rand.New(rand.NewPCG(1, 1)), false)
	if err != nil {
		t.Fatal(err)
	}
	random, _, err := ssl.LoadEncoder(final, rand.New(rand.NewPCG(1, 1)), true)
	if err != nil {
		t.Fatal(err)
	}
	wa, wb, wr := weightOf(t, trained), weightOf(t, fromCkpt), weightOf(t, random)
	if !equal(wa, wb) || equal(wa, wr) {
		t.Fatal("checkpoint backbone should equal the final weights, and differ from a fresh init")
	}
	for _, args := range [][]string{
		{"eval", "knn", "--checkpoint", final},
		{"eval", "knn", "--checkpoint", final, "--random-init"},
		{"eval", "knn", "--pixels"},
		{"eval", "linear", "--checkpoint", final, "--epochs", "3"},
		{"eval", "linear", "--pixels", "--checkpoint", final, "--epochs", "3"},
		{"eval", "finetune", "--checkpoint", final, "--fraction", "0.5", "--epochs", "1", "--batch", "8"},
	} {
		code, stdout, stderr := runCLI(append(args, "--workers", "2")...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		if !strings.Contains(stdout, args[1]+" top-1 ") || !strings.Contains(stdout, "top-5") {
			t.Fatalf("%v: output %q", args, stdout)
		}
	}
}

func weightOf(t *testing.T, e ssl.Encoder) []float32 {
	t.Helper()
	for _, p := range nn.StateOf(e).Params {
		if p.Name == "conv1.weight" {
			return p.Var.Value.Data
		}
	}
	t.Fatal("no conv1.weight")
	return nil
}

func equal(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// An interrupted run saves a checkpoint; resuming it reproduces the
// uninterrupted run's final weights.
func TestInterruptAndResume(t *testing.T) {
	tinyFashion(t, 48, 8)
	base := trainOptions{Method: "simclr", Data: "fashion-mnist", Arch: "resnet18-cifar", Width: 0.0625, Size: 16,
		Epochs: 2, Batch: 8, KNNBank: 8, KNNQuery: 8, CheckpointEvery: 1, LogEvery: 2, Seed: 3, Workers: 2,
		OnDecodeError: "fail"}
	var sink bytes.Buffer

	straight := base
	straight.Out = t.TempDir()
	if err := (&trainer{opts: straight, stdout: &sink, stderr: &sink}).run(t.Context()); err != nil {
		t.Fatal(err)
	}

	// Interrupt after step 8 of 12 (epoch 2, step 2 of 6).
	cut := base
	cut.Out = t.TempDir()
	sig := make(chan os.Signal, 1)
	tr := &trainer{opts: cut, stdout: &sink, stderr: &sink, interrupt: sig,
		afterStep: func(step int64) {
			if step == 8 {
				sig <- syscall.SIGINT
			}
		}}
	err := tr.run(t.Context())
	ckpt := filepath.Join(cut.Out, ssl.CheckpointFile)
	if err == nil || !strings.Contains(err.Error(), "checkpoint saved to "+ckpt) || !strings.Contains(err.Error(), "step 8") {
		t.Fatalf("interrupt: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cut.Out, ssl.FinalFile)); err == nil {
		t.Fatal("interrupted run wrote final weights")
	}

	// A resume with a different spec is refused.
	bad := cut
	bad.Resume, bad.Batch = ckpt, 4
	if err := (&trainer{opts: bad, stdout: &sink, stderr: &sink}).run(t.Context()); err == nil || !strings.Contains(err.Error(), "different run") {
		t.Fatalf("mismatched resume: %v", err)
	}

	cont := cut
	cont.Resume = ckpt
	if err := (&trainer{opts: cont, stdout: &sink, stderr: &sink}).run(t.Context()); err != nil {
		t.Fatal(err)
	}
	a, err := weights.Read(filepath.Join(straight.Out, ssl.FinalFile))
	if err != nil {
		t.Fatal(err)
	}
	b, err := weights.Read(filepath.Join(cont.Out, ssl.FinalFile))
	if err != nil {
		t.Fatal(err)
	}
	var worst float64
	for name, ta := range a.Tensors {
		fa, _ := ta.Float32()
		fb, err := b.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		for i := range fa.Data {
			worst = math.Max(worst, math.Abs(float64(fa.Data[i]-fb.Data[i])))
		}
	}
	if worst > 1e-4 {
		t.Fatalf("resumed run differs from the uninterrupted one by %g", worst)
	}
	if a.Metadata["sslzoo.steps"] != "12" || b.Metadata["sslzoo.steps"] != "12" {
		t.Fatalf("steps %s / %s, want 12", a.Metadata["sslzoo.steps"], b.Metadata["sslzoo.steps"])
	}
	// The resumed run appended to the interrupted run's metrics.
	recs := readMetrics(t, cont.Out)
	if last := recs[len(recs)-1]; last.Kind != "epoch" || last.Epoch != 2 || last.Step != 12 {
		t.Fatalf("last metrics record %+v", last)
	}
}

// A real SIGINT through the CLI path: the handler saves and the command
// exits non-zero with one line naming the checkpoint.
func TestSIGINTSavesCheckpoint(t *testing.T) {
	tinyFashion(t, 32, 8)
	out := t.TempDir()
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Wait for the first metrics line: the handler is installed by then.
		for range 600 {
			if b, err := os.ReadFile(filepath.Join(out, ssl.MetricsFile)); err == nil && len(b) > 0 {
				syscall.Kill(os.Getpid(), syscall.SIGINT)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	code, _, stderr := runCLI(append([]string{"train", "simclr"}, tinyArgs(out, "--epochs", "500", "--knn-every", "0")...)...)
	<-done
	ckpt := filepath.Join(out, ssl.CheckpointFile)
	if code == 0 || !strings.Contains(stderr, "interrupted (interrupt) at step") || !strings.Contains(stderr, "checkpoint saved to "+ckpt) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(ckpt); err != nil {
		t.Fatal(err)
	}
}

func TestTrainBadInput(t *testing.T) {
	tinyFashion(t, 16, 8)
	empty := t.TempDir()
	os.MkdirAll(filepath.Join(empty, "cls"), 0o755)
	out := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"train"}, "name a method"},
		{[]string{"train", "ibot"}, `unknown method "ibot"`},
		{[]string{"train", "simclr"}, "--out is required"},
		{append([]string{"train", "simclr"}, tinyArgs(out, "--arch", "resnet7")...), `unknown architecture "resnet7"`},
		{append([]string{"train", "simclr"}, tinyArgs(out, "--arch", "bert-mini")...), "image backbones"},
		{append([]string{"train", "simclr"}, tinyArgs(out, "--data", "imagenet")...), `unknown dataset "imagenet"`},
		{append([]string{"train", "simclr"}, tinyArgs(out, "--data", "folder:"+empty)...), "no images"},
		{append([]string{"train", "simclr"}, tinyArgs(out, "--batch", "1")...), "--batch 1 must be at least 2"},
		{append([]string{"train", "simclr"}, tinyArgs(out, "--batch", "64")...), "fewer than one batch"},
		{append([]string{"train", "simclr"}, tinyArgs(out, "--epochs", "0")...), "--epochs 0"},
		{append([]string{"train", "simclr"}, tinyArgs(out, "--width", "-1")...), "--width -1"},
		{append([]string{"train", "simclr"}, tinyArgs(out, "--on-decode-error", "ignore")...), `"ignore": want fail or skip`},
		{append([]string{"train", "simclr"}, tinyArgs(out, "--lr", "-0.1")...), "--lr -0.1"},
		{append([]string{"train", "simclr"}, tinyArgs(out, "--recipe", "imagenet")...), `unknown --recipe "imagenet"`},
		{append([]string{"train", "mae"}, tinyArgs(out, "--arch", "vit-tiny", "--recipe", "cifar")...), "MAE has the paper's recipe only"},
		{append([]string{"train", "mocov3"}, tinyArgs(out, "--arch", "vit-tiny", "--recipe", "cifar")...), "recipe is for ResNets"},
		{append([]string{"train", "simclr"}, tinyArgs(out, "--batch", "x")...), "invalid value"},
		{append([]string{"train", "simclr"}, tinyArgs(out, "--resume", filepath.Join(out, "missing.safetensors"))...), "missing.safetensors"},
		{append([]string{"train", "simclr", "extra"}, tinyArgs(out)...), `unexpected argument "extra"`},
		{[]string{"eval"}, "name a protocol"},
		{[]string{"eval", "svm"}, `unknown protocol "svm"`},
		{[]string{"eval", "knn"}, "--checkpoint is required"},
		{[]string{"eval", "knn", "--pixels", "--random-init"}, "exclude each other"},
		{[]string{"eval", "finetune", "--pixels"}, "--pixels applies to knn and linear"},
		{[]string{"eval", "knn", "--checkpoint", filepath.Join(out, "nope.safetensors")}, "nope.safetensors"},
		{[]string{"eval", "knn", "--pixels", "--k", "0"}, "--k 0"},
		{[]string{"eval", "knn", "--checkpoint", "x", "--pool", "max"}, `--pool "max"`},
		{[]string{"eval", "knn", "--pixels", "--pool", "mean"}, "--pixels has no network"},
		{append([]string{"train", "mae"}, tinyArgs(out, "--pool", "first")...), `--pool "first"`},
		{append([]string{"train", "simclr"}, tinyArgs(out, "--pool", "mean")...), "applies to ViTs"},
		{[]string{"eval", "finetune", "--checkpoint", "x", "--fraction", "2"}, "--fraction 2"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, _, errs := runCLI(c.args...)
			if code == 0 {
				t.Fatal("exit 0, want failure")
			}
			if strings.Count(errs, "\n") != 1 || !strings.Contains(errs, c.want) {
				t.Fatalf("stderr %q, want one line containing %q", errs, c.want)
			}
		})
	}
}

// An image folder with a corrupt file: --on-decode-error fail stops naming
// the file; skip warns and trains on the rest.
func TestTrainFolderDecodeErrors(t *testing.T) {
	root := t.TempDir()
	rng := rand.New(rand.NewPCG(2, 2))
	for _, cls := range []string{"a", "b"} {
		d := filepath.Join(root, cls)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range 8 {
			m := image.NewRGBA(image.Rect(0, 0, 20, 20))
			for p := 0; p < len(m.Pix); p += 4 {
				m.Pix[p], m.Pix[p+1], m.Pix[p+2], m.Pix[p+3] = uint8(rng.IntN(256)), uint8(rng.IntN(256)), 0, 255
			}
			if cls == "b" {
				m.Set(0, 0, color.RGBA{255, 255, 255, 255})
			}
			var buf bytes.Buffer
			png.Encode(&buf, m)
			if err := os.WriteFile(filepath.Join(d, string(rune('0'+i))+".png"), buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	bad := filepath.Join(root, "a", "broken.png")
	if err := os.WriteFile(bad, []byte("\x89PNG\r\n\x1a\nnot really"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	args := []string{"train", "swav", "--data", "folder:" + root, "--width", "0.0625", "--size", "16", "--batch", "4",
		"--epochs", "1", "--out", out, "--knn-bank", "8", "--knn-query", "8", "--workers", "2"}
	code, _, errs := runCLI(args...)
	if code == 0 || !strings.Contains(errs, "broken.png") || strings.Count(errs, "\n") != 1 {
		t.Fatalf("fail policy: exit %d, stderr %q", code, errs)
	}
	code, _, errs = runCLI(append(args, "--on-decode-error", "skip")...)
	if code != 0 || !strings.Contains(errs, "warning:") || !strings.Contains(errs, "broken.png") {
		t.Fatalf("skip policy: exit %d, stderr %q", code, errs)
	}
	f, err := weights.Read(filepath.Join(out, ssl.FinalFile))
	if err != nil {
		t.Fatal(err)
	}
	var spec ssl.TrainSpec
	json.Unmarshal([]byte(f.Metadata[ssl.MetaTrain]), &spec)
	if spec.InChannels != 3 || len(spec.Mean) != 3 {
		t.Fatalf("folder spec %+v, want RGB", spec)
	}
}
