package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestEvalMLMCLI trains a tiny MLM run and checks that `sslzoo eval mlm`
// on its own model prints the run's final held-out figures (same masks),
// and that bad input gives one-line errors.
func TestEvalMLMCLI(t *testing.T) {
	dir := t.TempDir()
	corpus := filepath.Join(dir, "corpus.txt")
	var sb strings.Builder
	for i := range 80 {
		fmt.Fprintf(&sb, "The light of the sun is refracted by the prism into colours number %d. ", i%7)
		if i%4 == 0 {
			sb.WriteString("Rays of red light are less refracted than rays of blue light.\n\n")
		}
	}
	if err := os.WriteFile(corpus, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	code, stdout, stderr := runCLI("train", "mlm", "--data", "text:"+corpus, "--arch", "bert-mini", "--seq-len", "24",
		"--batch", "4", "--steps", "3", "--vocab-size", "120", "--held-out", "0.25", "--out", out)
	if code != 0 {
		t.Fatalf("train: exit %d: %s", code, stderr)
	}
	m := regexp.MustCompile(`held-out perplexity \S+ -> (\S+) \(unigram baseline (\S+)\); masked accuracy \S+ -> (\S+) \(unigram (\S+)\)`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("train printed no held-out summary:\n%s", stdout)
	}
	if !strings.Contains(stdout, "sequences/s") {
		t.Errorf("train printed no throughput:\n%s", stdout)
	}

	code, stdout, stderr = runCLI("eval", "mlm", "--model", out, "--like", out, "--json")
	if code != 0 {
		t.Fatalf("eval mlm: exit %d: %s", code, stderr)
	}
	var r evalMLMReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("eval mlm --json printed %q: %v", stdout, err)
	}
	got := []string{fmt.Sprintf("%.2f", r.Perplexity), fmt.Sprintf("%.2f", r.Unigram.Perplexity),
		fmt.Sprintf("%.3f", r.Accuracy), fmt.Sprintf("%.3f", r.Unigram.Accuracy)}
	if strings.Join(got, " ") != strings.Join(m[1:], " ") || r.Masked == 0 || r.HeldOut == 0 || r.Protocol != "mlm" {
		t.Errorf("eval mlm %+v gives %v; the training run printed %v", r, got, m[1:])
	}
	code, stdout, _ = runCLI("eval", "mlm", "--model", out, "--like", filepath.Join(out, "sequences.safetensors"))
	if code != 0 || !strings.Contains(stdout, "masked accuracy") || !strings.Contains(stdout, "unigram baseline") {
		t.Errorf("eval mlm (text): exit %d, %q", code, stdout)
	}

	hf := filepath.Join("..", "..", "zoo", "testdata", "hf_bert_mlm")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"eval", "mlm", "--model", out}, "--like are both required"},
		{[]string{"eval", "mlm", "--model", hf, "--like", out}, "vocabulary"},
		{[]string{"eval", "mlm", "--model", out, "--like", dir}, "sslzoo train mlm"},
		{[]string{"eval", "mlm", "--model", dir, "--like", out}, "config.json"},
	} {
		code, _, stderr := runCLI(c.args...)
		if code == 0 || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q, want one line mentioning %q", c.args, code, stderr, c.want)
		}
	}
}
