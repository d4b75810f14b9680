package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sslzoo/sslzoo"
	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/serve/openai"
	"github.com/sslzoo/sslzoo/serve/triton"
)

func TestServeUsage(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"serve"}, "at least one --model"},
		{[]string{"serve", "--model", "x.onnx", "--max-batch", "0"}, "--max-batch 0"},
		{[]string{"serve", "--model", "../up=x.onnx"}, `model name "../up"`},
		{[]string{"serve", "--model", "x.onnx", "--engine", "tpu"}, `--engine "tpu"`},
		{[]string{"serve", "--model", "x.onnx", "--device", "gpu7"}, "--device"},
		{[]string{"serve", "--model", "x.onnx", "--token-file", empty}, "one non-empty line"},
		{[]string{"serve", "--model", "x.onnx", "--token-file", filepath.Join(dir, "none")}, "--token-file"},
		{[]string{"serve", "--model", filepath.Join(dir, "missing.onnx")}, "missing.onnx"},
		{[]string{"serve", "--model", "simclr-resnet18-fmnsit"}, "did you mean simclr-resnet18-fmnist"},
	} {
		code, _, stderr := runCLI(c.args...)
		if code == 0 || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q; want one line saying %q", c.args, code, stderr, c.want)
		}
	}
}

// freePort is a loopback port nothing listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// fakeBinary makes DIR/bin/sslzoo run this test binary as the CLI, with
// the cache at cache and its output sent to log ("" keeps it on the
// caller's stdout and stderr), so README blocks run as written.
func fakeBinary(t *testing.T, dir, cache, log string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	redirect := ""
	if log != "" {
		redirect = fmt.Sprintf(" > %s 2>&1", log)
	}
	wrapper := fmt.Sprintf("#!/bin/sh\nexec env %s=1 SSLZOO_CACHE=%s %s \"$@\"%s\n", envRunCLI, cache, self, redirect)
	if err := os.WriteFile(filepath.Join(dir, "bin", "sslzoo"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
}

// The README's serving block runs as written, but for its port, with this
// test binary as bin/sslzoo; each answer it prints is the embedding
// sslzoo.Encoder gives in-process, and the server exits 0 on SIGTERM.
func TestReadmeServing(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	blocks := readmeBlocks(t, "### Serving", "sh")
	if len(blocks) != 1 {
		t.Fatalf("%d sh blocks in the README's Serving section, want 1", len(blocks))
	}
	dir := t.TempDir()
	boot := writeBoot(t, dir)
	cache := filepath.Join(dir, "cache")
	fakeBinary(t, dir, cache, filepath.Join(dir, "serve.log"))
	port := freePort(t)
	script := strings.ReplaceAll(blocks[0], "localhost:8080", "localhost:"+port)
	script = strings.Replace(script, "bin/sslzoo serve ", "bin/sslzoo serve --addr 127.0.0.1:"+port+" ", 1)
	// The server's pid, taken as it starts: once `kill %1` has run, the job
	// may be gone from the job table, but bash keeps the exit status of a
	// waited-for pid.
	first, rest, ok := strings.Cut(script, "&\n")
	if !ok {
		t.Fatal("the serving block does not start the server in the background")
	}
	script = first + "& server=$!\n" + rest + "wait $server\necho \"server exit $?\" >&2\n"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	log, _ := os.ReadFile(filepath.Join(dir, "serve.log"))
	if err != nil || !strings.Contains(stderr.String(), "server exit 0") || !strings.Contains(string(log), "stopped") {
		t.Fatalf("the block failed: %v\nstderr: %s\nserver log: %s", err, stderr.String(), log)
	}

	// The answers, in the block's order.
	dec := json.NewDecoder(&stdout)
	var answers []json.RawMessage
	for {
		var v json.RawMessage
		if err := dec.Decode(&v); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("answer %d is not JSON: %v (stdout %q)", len(answers), err, stdout.String())
		}
		answers = append(answers, v)
	}
	if len(answers) < 5 {
		t.Fatalf("%d answers, want ready, metadata, two embeddings and an inference: %s", len(answers), stdout.String())
	}
	answers = answers[len(answers)-4:] // the readiness loop may answer more than once
	var md struct {
		Name       string
		Parameters map[string]any
	}
	if err := json.Unmarshal(answers[0], &md); err != nil || md.Name != "simclr-resnet18-fmnist" || md.Parameters["preprocess"] == nil {
		t.Errorf("metadata %s (%v)", answers[0], err)
	}

	opts := &sslzoo.Options{}
	t.Setenv("SSLZOO_CACHE", cache)
	img, err := sslzoo.Load(ctx, "simclr-resnet18-fmnist", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	txt, err := sslzoo.Load(ctx, "mlm-bert-tiny-brown", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer txt.Close()

	wantText, err := txt.EmbedTexts([]string{"The jury praised the city.", "A storm hit the coast."})
	if err != nil {
		t.Fatal(err)
	}
	compareAnswer(t, "texts", answers[1], wantText)
	wantImage, err := img.EmbedImages([]image.Image{boot})
	if err != nil {
		t.Fatal(err)
	}
	compareAnswer(t, "boot.png", answers[2], wantImage)
	wantZeros, err := img.EmbedTensor(make([]float32, 28*28), 1)
	if err != nil {
		t.Fatal(err)
	}
	var v2 struct {
		Outputs []struct {
			Name  string
			Shape []int
			Data  []float32
		}
	}
	if err := json.Unmarshal(answers[3], &v2); err != nil || len(v2.Outputs) != 1 {
		t.Fatalf("v2 answer %.200s (%v)", answers[3], err)
	}
	closeTo(t, "v2 zeros", v2.Outputs[0].Data, wantZeros[0])
}

func compareAnswer(t *testing.T, what string, body []byte, want [][]float32) {
	t.Helper()
	resp, err := openai.DecodeResponse(body)
	if err != nil {
		t.Fatalf("%s: %v: %.200s", what, err, body)
	}
	if len(resp.Embeddings) != len(want) {
		t.Fatalf("%s: %d embeddings, want %d", what, len(resp.Embeddings), len(want))
	}
	for i := range want {
		closeTo(t, fmt.Sprintf("%s %d", what, i), resp.Embeddings[i], want[i])
	}
}

func closeTo(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for j := range want {
		if math.Abs(float64(got[j]-want[j])) > 1e-4*(1+math.Abs(float64(want[j]))) {
			t.Fatalf("%s: value %d is %g, in-process %g", what, j, got[j], want[j])
		}
	}
}

// The README's Triton block runs as written, with this test binary as
// bin/sslzoo: it prints the config of the model it wrote, and that config
// is the one the written model calls for.
func TestReadmeTriton(t *testing.T) {
	blocks := readmeBlocks(t, "### Moving to Triton or KServe", "sh")
	if len(blocks) != 1 {
		t.Fatalf("%d sh blocks in the README's Triton section, want 1", len(blocks))
	}
	dir := t.TempDir()
	fakeBinary(t, dir, filepath.Join(dir, "cache"), "")
	cmd := exec.Command("bash", "-c", "set -e\n"+blocks[0])
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the block failed: %v\n%s", err, out)
	}
	modelDir := filepath.Join(dir, "models", "simclr-resnet18-fmnist")
	info, err := onnxrt.ReadModelInfoFile(filepath.Join(modelDir, triton.ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	want, err := triton.ConfigFor("simclr-resnet18-fmnist", info, triton.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), want.Text()) {
		t.Errorf("the block printed\n%s\nwant it to show the config\n%s", out, want.Text())
	}
}
