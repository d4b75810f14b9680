package main

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/conformance"
	"github.com/sslzoo/sslzoo/data/text"
	"github.com/sslzoo/sslzoo/internal/npy"
	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/zoo"
	"github.com/sslzoo/sslzoo/zoo/load"
	"github.com/sslzoo/sslzoo/zoo/ssl"
)

// matchEngines runs an exported file in the Go engine, and in ONNX Runtime
// when its library loads, on in, against want (the Go forward).
func matchEngines(t *testing.T, path string, in, want []*onnxrt.Tensor) {
	t.Helper()
	kinds := []string{onnxrt.EngineGo}
	if err := onnxrt.Available(); err == nil {
		kinds = append(kinds, onnxrt.EngineORT)
	} else {
		t.Logf("onnxruntime skipped: %v", err)
	}
	for _, kind := range kinds {
		e, err := onnxrt.OpenEngine(path, kind, onnxrt.Options{IntraOpThreads: 1})
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		got, err := e.Run(in...)
		e.Close()
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if c := conformance.CompareOutputs(got, want); !c.OK {
			t.Errorf("%s on %s: %s", kind, filepath.Base(path), c.Problem)
		}
	}
}

func modelMetadata(t *testing.T, path string) map[string]string {
	t.Helper()
	info, err := onnxrt.ReadModelInfoFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Metadata
}

// TestExportMAE: a tiny `sslzoo train mae` result exports as its ViT
// encoder over all patches, with cls or mean pooling recorded, and both
// engines match the Go forward of the trained encoder.
func TestExportMAE(t *testing.T) {
	tinyFashion(t, 16, 8)
	out := t.TempDir()
	code, _, stderr := runCLI("train", "mae", "--data", "fashion-mnist", "--arch", "vit-tiny", "--size", "16",
		"--batch", "8", "--epochs", "1", "--out", out, "--knn-every", "0", "--workers", "1")
	if code != 0 {
		t.Fatalf("train exit %d: %s", code, stderr)
	}
	final := filepath.Join(out, ssl.FinalFile)
	lb, err := load.File(final, load.Options{})
	if err != nil {
		t.Fatal(err)
	}
	vit := lb.Model.(*zoo.ViT)
	var embeddings [][]float32
	for _, pool := range []string{"cls", "mean"} {
		path := filepath.Join(t.TempDir(), "mae-"+pool+".onnx")
		if code, _, stderr := runCLI("export", "--weights", final, "--pool", pool, "--out", path); code != 0 {
			t.Fatalf("export --pool %s: exit %d: %s", pool, code, stderr)
		}
		md := modelMetadata(t, path)
		if md["sslzoo.pooling"] != pool || md["sslzoo.method"] != "mae" || md["sslzoo.backbone"] != "vit-tiny" {
			t.Errorf("pool %s: metadata %v", pool, md)
		}
		b, err := conformance.NewBackbone("vit-tiny", vit, conformance.BackboneOptions{Pool: pool})
		if err != nil {
			t.Fatal(err)
		}
		in := b.RandomInputs(rand.New(rand.NewPCG(4, 4)), 3)
		want, err := b.GoForward(in)
		if err != nil {
			t.Fatal(err)
		}
		matchEngines(t, path, in, want)
		d, _ := want[0].Float32s()
		embeddings = append(embeddings, d)
	}
	if c := conformance.CompareOutputs(
		[]*onnxrt.Tensor{onnxrt.NewTensor([]int{3, 192}, embeddings[0])},
		[]*onnxrt.Tensor{onnxrt.NewTensor([]int{3, 192}, embeddings[1])}); c.OK {
		t.Error("cls and mean pooling gave the same embedding")
	}

	// The masked-reconstruction graph of the checkpoint against MAE.Forward.
	ckpt := filepath.Join(out, "checkpoint.safetensors")
	recon := filepath.Join(t.TempDir(), "recon.onnx")
	if code, _, stderr := runCLI("export", "--weights", ckpt, "--graph", "reconstruct", "--out", recon); code != 0 {
		t.Fatalf("export --graph reconstruct: exit %d: %s", code, stderr)
	}
	if md := modelMetadata(t, recon); md["sslzoo.mae"] == "" || md["sslzoo.method"] != "mae" {
		t.Errorf("reconstruction metadata %v", md)
	}
	m, _, err := ssl.LoadMAECheckpoint(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(6, 6))
	imgs := tensor.New(2, 1, 16, 16)
	for i := range imgs.Data {
		imgs.Data[i] = float32(rng.NormFloat64())
	}
	noise := make([]float32, 2*16)
	for i := range noise {
		noise[i] = rng.Float32()
	}
	tp := autograd.NewTape()
	var ref ssl.MAEOutput
	tp.NoGrad(func() { ref, err = m.Forward(tp, imgs, noise) })
	if err != nil {
		t.Fatal(err)
	}
	matchEngines(t, recon,
		[]*onnxrt.Tensor{onnxrt.NewTensor(imgs.Shape, imgs.Data), onnxrt.NewTensor([]int{2, 16}, ref.Masking.Mask)},
		[]*onnxrt.Tensor{onnxrt.NewTensor(ref.Pred.Value.Shape, ref.Pred.Value.Data)})
	if code, _, stderr := runCLI("export", "--weights", final, "--graph", "reconstruct", "--out", recon+"2"); code == 0 || !strings.Contains(stderr, "holds the encoder only") {
		t.Errorf("reconstruct from final weights: exit %d: %s", code, stderr)
	}
}

// TestExportHFAndEmbedText: a Hugging Face BERT folder exports with its
// tokenizer in the metadata; `sslzoo embed --text` tokenizes in Go and
// both engines give the Go forward's embedding of the same tokens.
func TestExportHFAndEmbedText(t *testing.T) {
	dir := filepath.Join("..", "..", "zoo", "testdata", "hf_bert_mlm")
	const seq = 12
	model := filepath.Join(t.TempDir(), "bert.onnx")
	if code, stdout, stderr := runCLI("export", "--hf", dir, "--seq", "12", "--pool", "mean", "--out", model); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	} else if !strings.Contains(stdout, "input_ids") {
		t.Errorf("stdout %q", stdout)
	}
	hf, err := zoo.LoadHFBERT(dir)
	if err != nil {
		t.Fatal(err)
	}
	md := modelMetadata(t, model)
	tm, err := text.ParseRecorded(md[text.MetaTokenizer])
	if err != nil {
		t.Fatal(err)
	}
	if md[text.MetaVocab] == "" {
		t.Error("the exported model does not carry its vocabulary")
	}
	if tm.VocabSHA256 != hf.Tokenizer.Vocab().SHA256() || tm.MaxLen != seq || !tm.Lowercase || md["sslzoo.pooling"] != "mean" || md["sslzoo.method"] != "mlm" {
		t.Errorf("metadata %v", md)
	}
	b, err := conformance.NewBackbone("hf", hf.Model, conformance.BackboneOptions{Seq: seq, Pool: "mean"})
	if err != nil {
		t.Fatal(err)
	}
	in := b.RandomInputs(rand.New(rand.NewPCG(5, 5)), 4)
	want, err := b.GoForward(in)
	if err != nil {
		t.Fatal(err)
	}
	matchEngines(t, model, in, want)

	// embed --text: the reference is the Go forward on the tokenizer's ids.
	texts := []string{"The light of the Sun.", "", strings.Repeat("light and colour ", 10)}
	tok, err := text.New(hf.Tokenizer.Vocab(), func() text.Config { c := hf.Tokenizer.Config(); c.MaxLen = seq; return c }())
	if err != nil {
		t.Fatal(err)
	}
	ids, mask := make([]int64, len(texts)*seq), make([]int64, len(texts)*seq)
	for i, s := range texts {
		e, err := tok.Encode(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := tok.Pad(e, seq); err != nil {
			t.Fatal(err)
		}
		for j := range seq {
			ids[i*seq+j], mask[i*seq+j] = int64(e.IDs[j]), int64(e.AttentionMask[j])
		}
	}
	ref, err := b.GoForward([]*onnxrt.Tensor{onnxrt.NewTensor([]int{3, seq}, ids), onnxrt.NewTensor([]int{3, seq}, mask)})
	if err != nil {
		t.Fatal(err)
	}
	textFile := filepath.Join(t.TempDir(), "texts.txt")
	if err := os.WriteFile(textFile, []byte("\n"+texts[2]+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	engines := []string{"go"}
	if onnxrt.Available() == nil {
		engines = append(engines, "ort")
	}
	for i, eng := range engines {
		// The vocabulary given, or (the second time) the one the model carries.
		vocab := []string{"--vocab", filepath.Join(dir, "vocab.txt")}
		if i%2 == 1 || len(engines) == 1 {
			vocab = nil
		}
		y := filepath.Join(t.TempDir(), "y.npy")
		code, stdout, stderr := runCLI(append([]string{"embed", "--model", model, "--engine", eng, "--text", texts[0],
			"--text-file", textFile, "--out", y}, vocab...)...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", eng, code, stderr)
		}
		if !strings.Contains(stderr, "1 of 3 texts were longer than the model's 12 tokens and were truncated") {
			t.Errorf("%s: no truncation warning: %q", eng, stderr)
		}
		a, err := npy.ReadFile(y)
		if err != nil {
			t.Fatal(err)
		}
		got := []*onnxrt.Tensor{onnxrt.NewTensor(a.Shape, a.Data.([]float32))}
		if c := conformance.CompareOutputs(got, ref[:1]); !c.OK {
			t.Errorf("%s: %s (%s)", eng, c.Problem, stdout)
		}
	}

	// .jsonl records carry each text beside its embedding, in order.
	jl := filepath.Join(t.TempDir(), "y.jsonl")
	if code, _, stderr := runCLI("embed", "--model", model, "--engine", "go", "--text", texts[0], "--text", texts[1], "--out", jl); code != 0 {
		t.Fatalf("jsonl: exit %d: %s", code, stderr)
	}
	raw, err := os.ReadFile(jl)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d jsonl records for 2 texts", len(lines))
	}
	for i, line := range lines {
		var rec struct {
			Text      string    `json:"text"`
			Embedding []float32 `json:"embedding"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Text != texts[i] || !strings.HasPrefix(line, `{"text":`) {
			t.Fatalf("record %d %q: %v", i, line, err)
		}
		got := []*onnxrt.Tensor{onnxrt.NewTensor([]int{1, len(rec.Embedding)}, rec.Embedding)}
		row := ref[0].Data.([]float32)[i*ref[0].Shape[1] : (i+1)*ref[0].Shape[1]]
		if c := conformance.CompareOutputs(got, []*onnxrt.Tensor{onnxrt.NewTensor([]int{1, len(row)}, row)}); !c.OK {
			t.Errorf("jsonl record %d: %s", i, c.Problem)
		}
	}

	// The model carries its vocabulary: a copy elsewhere embeds on its own.
	side := filepath.Join(t.TempDir(), "m.onnx")
	raw, _ = os.ReadFile(model)
	if err := os.WriteFile(side, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI("embed", "--model", side, "--engine", "go", "--text", texts[0], "--out", filepath.Join(t.TempDir(), "y.npy")); code != 0 {
		t.Errorf("alone: exit %d: %s", code, stderr)
	}
	// A text model that records no vocabulary needs --vocab, or a
	// vocab.txt beside it; a folder works too.
	plain := filepath.Join(t.TempDir(), "plain.onnx")
	if code, _, stderr := runCLI("export", "--arch", "bert-tiny", "--seq", "8", "--out", plain); code != 0 {
		t.Fatal(stderr)
	}
	if code, _, stderr := runCLI("embed", "--model", plain, "--engine", "go", "--text", "x", "--out", filepath.Join(t.TempDir(), "y.npy")); code == 0 || !strings.Contains(stderr, "records no vocabulary and there is no vocab.txt beside it") {
		t.Errorf("no vocab: exit %d: %s", code, stderr)
	}
}

// TestExportMaskedErrors: bad input gives one line and a non-zero exit.
func TestExportMaskedErrors(t *testing.T) {
	tmp := t.TempDir()
	hf := filepath.Join("..", "..", "zoo", "testdata", "hf_bert_mlm")
	model := filepath.Join(tmp, "bert.onnx")
	if code, _, stderr := runCLI("export", "--hf", hf, "--seq", "8", "--out", model); code != 0 {
		t.Fatal(stderr)
	}
	// A vocabulary of the same size with one token changed.
	vocab, _ := os.ReadFile(filepath.Join(hf, "vocab.txt"))
	other := filepath.Join(tmp, "other.txt")
	os.WriteFile(other, []byte(strings.Replace(string(vocab), "light", "lamp", 1)), 0o644)
	// A folder whose vocab.txt does not match config.json's vocab_size.
	bad := filepath.Join(tmp, "badvocab")
	os.MkdirAll(bad, 0o755)
	for _, n := range []string{"config.json", "model.safetensors"} {
		b, _ := os.ReadFile(filepath.Join(hf, n))
		os.WriteFile(filepath.Join(bad, n), b, 0o644)
	}
	os.WriteFile(filepath.Join(bad, "vocab.txt"), []byte(string(vocab)+"extra\n"), 0o644)
	img := filepath.Join(tmp, "img.onnx")
	if code, _, stderr := runCLI("export", "--arch", "resnet18-cifar", "--image-size", "8", "--out", img); code != 0 {
		t.Fatal(stderr)
	}
	y := filepath.Join(tmp, "y.npy")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"export", "--arch", "vit-tiny", "--graph", "decoder", "--out", filepath.Join(tmp, "a.onnx")}, "want embed or reconstruct"},
		{[]string{"export", "--arch", "vit-tiny", "--pool", "max", "--out", filepath.Join(tmp, "a.onnx")}, "want cls or mean"},
		{[]string{"export", "--hf", tmp, "--out", filepath.Join(tmp, "a.onnx")}, "not a Hugging Face model folder"},
		{[]string{"export", "--hf", bad, "--out", filepath.Join(tmp, "a.onnx")}, "vocab.txt has 41 tokens but config.json vocab_size is 40"},
		{[]string{"export", "--hf", hf, "--seq", "64", "--out", filepath.Join(tmp, "a.onnx")}, "exceeds the model's 32 positions"},
		{[]string{"export", "--hf", hf, "--arch", "bert-mini", "--out", filepath.Join(tmp, "a.onnx")}, "leave out --arch"},
		{[]string{"export", "--arch", "resnet18-cifar", "--pool", "mean", "--out", filepath.Join(tmp, "a.onnx")}, "pooling applies to ViT and BERT"},
		{[]string{"embed", "--model", model, "--text", "x", "--vocab", other, "--out", y}, "not the one the model records"},
		{[]string{"embed", "--model", model, "--text", "x", "--vocab", filepath.Join(bad, "vocab.txt"), "--out", y}, "not the one the model records"},
		{[]string{"embed", "--model", img, "--text", "x", "--vocab", other, "--out", y}, "needs a text model"},
		{[]string{"embed", "--model", model, "--text", "x", "--input", "x.npy", "--out", y}, "replace --input"},
		{[]string{"embed", "--model", model, "--text-file", filepath.Join(tmp, "none.txt"), "--vocab", other, "--out", y}, "--text-file"},
	}
	for _, c := range cases {
		code, _, stderr := runCLI(c.args...)
		if code == 0 || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q, want one line with %q", c.args, code, stderr, c.want)
		}
	}
	if _, err := os.Stat(y); err == nil {
		t.Error("a failed embed left an output file")
	}
}

// TestConformanceMaskedRows: `sslzoo conformance` knows the MAE-encoder and
// HF-BERT rows and passes them.
func TestConformanceMaskedRows(t *testing.T) {
	code, stdout, stderr := runCLI("conformance", "--reduced", "--batches", "2", "--no-node", "--no-checker", conformance.ModelMAE, conformance.ModelHFBERT)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, stderr, stdout)
	}
	for _, name := range conformance.ExtraModels() {
		if !strings.Contains(stdout, name) {
			t.Errorf("no %s row:\n%s", name, stdout)
		}
	}
	if strings.Contains(stdout, "MISMATCH") || strings.Contains(stdout, "error") {
		t.Errorf("stdout:\n%s", stdout)
	}
}
