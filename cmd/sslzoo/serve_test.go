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
	"github.com/sslzoo/sslzoo/serve/openai"
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
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	wrapper := fmt.Sprintf("#!/bin/sh\nexec env %s=1 SSLZOO_CACHE=%s %s \"$@\" > %s 2>&1\n", envRunCLI, cache, self, filepath.Join(dir, "serve.log"))
	if err := os.WriteFile(filepath.Join(dir, "bin", "sslzoo"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	script := strings.ReplaceAll(blocks[0], "localhost:8080", "localhost:"+port)
	script = strings.Replace(script, "bin/sslzoo serve ", "bin/sslzoo serve --addr 127.0.0.1:"+port+" ", 1)
	script += "wait %1\necho \"server exit $?\" >&2\n"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
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
