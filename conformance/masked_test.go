package conformance

import (
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/export"
	"github.com/sslzoo/sslzoo/zoo"
)

// TestExtraModels runs the masked-modelling rows (MAE encoder, HF BERT)
// through the same checks as TestModels, reduced.
func TestExtraModels(t *testing.T) {
	for _, name := range ExtraModels() {
		t.Run(name, func(t *testing.T) {
			r := RunModel(name, Options{Reduced: true, Threads: 1, Seed: 5, Batches: []int{1, 3}, NoNode: true})
			if r.Error != "" {
				t.Fatal(r.Error)
			}
			if r.GoEngine == nil {
				t.Fatal("the Go engine did not run")
			}
			for what, c := range map[string]*Compare{"go engine": r.GoEngine, "onnxruntime": r.ORT, "ort vs go engine": r.ORTvsGoEngine} {
				if c != nil && !c.OK {
					t.Errorf("%s: %s", what, c.Problem)
				}
			}
			if r.Checker != "" && r.Checker != "ok" {
				t.Errorf("onnx.checker: %s", r.Checker)
			}
			if !r.OK {
				t.Error("row not OK")
			}
			t.Logf("config %s, %d parameters, skipped %v", r.Config, r.Params, r.Skipped)
		})
	}
}

// TestPoolingMetadata: the pooling and, for the HF BERT, the tokenizer are
// recorded in the exported spec; mean pooling differs from the class token.
func TestPoolingMetadata(t *testing.T) {
	b, _, err := Prepare(ModelHFBERT, true, 1)
	if err != nil {
		t.Fatal(err)
	}
	md := b.Spec.Metadata
	if md[export.PoolingKey] != export.PoolMean || md["sslzoo.method"] != "mlm" {
		t.Errorf("metadata pooling %q method %q", md[export.PoolingKey], md["sslzoo.method"])
	}
	var tok struct {
		SHA       string `json:"vocab_sha256"`
		MaxLen    int    `json:"max_len"`
		Lowercase bool   `json:"lowercase"`
	}
	if err := json.Unmarshal([]byte(md["sslzoo.tokenizer"]), &tok); err != nil || len(tok.SHA) != 64 || tok.MaxLen != testSeq || !tok.Lowercase {
		t.Errorf("sslzoo.tokenizer %q (%v)", md["sslzoo.tokenizer"], err)
	}
	// Mean pooling by hand from last_hidden_state and the mask.
	in := b.RandomInputs(rand.New(rand.NewPCG(2, 0)), 3)
	out, err := b.GoForward(in)
	if err != nil {
		t.Fatal(err)
	}
	emb, _ := out[0].Float32s()
	seqOut, _ := out[1].Float32s()
	mask := in[1].Data.([]int64)
	h := out[0].Shape[1]
	for r := range 3 {
		n := 0
		sum := make([]float64, h)
		for j := range testSeq {
			if mask[r*testSeq+j] == 1 {
				n++
				for k := range h {
					sum[k] += float64(seqOut[(r*testSeq+j)*h+k])
				}
			}
		}
		for k := range h {
			if d := sum[k]/float64(n) - float64(emb[r*h+k]); d > 1e-5 || d < -1e-5 {
				t.Fatalf("row %d dim %d: embedding %g, mean of tokens %g", r, k, emb[r*h+k], sum[k]/float64(n))
			}
		}
	}

	m, _, err := Prepare(ModelMAE, true, 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.Spec.Metadata[export.PoolingKey] != export.PoolMean || m.Spec.Metadata["sslzoo.method"] != "mae" {
		t.Errorf("mae metadata %v", m.Spec.Metadata)
	}
	x := m.RandomInputs(rand.New(rand.NewPCG(3, 0)), 2)
	mean, err := m.GoForward(x)
	if err != nil {
		t.Fatal(err)
	}
	vit := m.Model.(*zoo.ViT)
	cls, err := goForward(func(tp *autograd.Tape, in []*autograd.Var) []*autograd.Var {
		return []*autograd.Var{vit.Forward(tp, in[0])}
	}, x)
	if err != nil {
		t.Fatal(err)
	}
	if c := CompareOutputs(mean, cls); c.OK {
		t.Error("mean pooling gave the class token's embedding")
	}
}
