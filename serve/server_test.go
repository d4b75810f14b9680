package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sslzoo/sslzoo"
	"github.com/sslzoo/sslzoo/data/preprocess"
	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/serve"
	"github.com/sslzoo/sslzoo/serve/kserve"
	"github.com/sslzoo/sslzoo/serve/openai"
	"github.com/sslzoo/sslzoo/weights/cache"
	"github.com/sslzoo/sslzoo/weights/ckptimport"
)

// The models every test serves: the bundled image encoder and a small
// BERT imported from a Hugging Face folder, opened once per test binary.
var (
	modelsOnce sync.Once
	imageEnc   *sslzoo.Encoder
	textEnc    *sslzoo.Encoder
	modelsErr  error
	modelsDir  string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "serve-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	modelsDir = dir
	code := m.Run()
	if imageEnc != nil {
		imageEnc.Close()
	}
	if textEnc != nil {
		textEnc.Close()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func encoders(t *testing.T) (img, txt *sslzoo.Encoder) {
	t.Helper()
	modelsOnce.Do(func() {
		ctx := context.Background()
		c := &cache.Cache{Root: filepath.Join(modelsDir, "cache"), Offline: true}
		if imageEnc, modelsErr = sslzoo.Load(ctx, "simclr-resnet18-fmnist", &sslzoo.Options{Cache: c}); modelsErr != nil {
			return
		}
		var res *ckptimport.Result
		if res, modelsErr = ckptimport.Import(filepath.Join("..", "zoo", "testdata", "hf_bert_mlm"), "hf-bert", ""); modelsErr != nil {
			return
		}
		weights := filepath.Join(modelsDir, "bert.safetensors")
		if modelsErr = ckptimport.Write(res, weights); modelsErr != nil {
			return
		}
		onnx := filepath.Join(modelsDir, "bert.onnx")
		if modelsErr = sslzoo.ExportWeights(weights, onnx, sslzoo.ExportOptions{Seq: 16}); modelsErr != nil {
			return
		}
		textEnc, modelsErr = sslzoo.Open(onnx, nil)
	})
	if modelsErr != nil {
		t.Fatal(modelsErr)
	}
	return imageEnc, textEnc
}

// start serves both models as "img" and "txt" on a loopback listener.
func start(t *testing.T, cfg serve.Config) (*serve.Server, string) {
	t.Helper()
	img, txt := encoders(t)
	srv, err := serve.New(cfg, serve.Model{Name: "img", Encoder: img}, serve.Model{Name: "txt", Encoder: txt})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		srv.Shutdown(context.Background())
	})
	return srv, ts.URL
}

type reply struct {
	code   int
	header http.Header
	body   []byte
}

func post(t *testing.T, url, contentType string, body []byte, header map[string]string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return do(t, req)
}

func get(t *testing.T, url string, header map[string]string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return reply{}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Error(err)
	}
	return reply{code: resp.StatusCode, header: resp.Header, body: b}
}

// randomPixels is n preprocessed images' worth of values.
func randomPixels(enc *sslzoo.Encoder, n int, seed uint64) *onnxrt.Tensor {
	r := rand.New(rand.NewPCG(seed, 1))
	c, h, w := enc.Preprocess().Shape()
	x := make([]float32, n*c*h*w)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return onnxrt.NewTensor([]int{n, c, h, w}, x)
}

func closeRows(t *testing.T, what string, got, want [][]float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d", what, len(got), len(want))
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("%s: row %d has %d values, want %d", what, i, len(got[i]), len(want[i]))
		}
		for j := range want[i] {
			if d := math.Abs(float64(got[i][j] - want[i][j])); d > 1e-4*(1+math.Abs(float64(want[i][j]))) {
				t.Fatalf("%s: row %d value %d is %g, direct embedding %g", what, i, j, got[i][j], want[i][j])
			}
		}
	}
}

func tensorRows(t *testing.T, x *onnxrt.Tensor) [][]float32 {
	t.Helper()
	flat, err := x.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	n := x.Shape[0]
	d := len(flat) / n
	rows := make([][]float32, n)
	for i := range rows {
		rows[i] = flat[i*d : (i+1)*d]
	}
	return rows
}

// v2 sends one KServe v2 request (JSON, or with binary tensors both ways)
// and returns the embedding output.
func v2(t *testing.T, base, model string, binary bool, inputs map[string]*onnxrt.Tensor, order []string) [][]float32 {
	t.Helper()
	req := &kserve.Request{ID: "req-" + model, BinaryOutput: binary}
	for _, name := range order {
		req.Inputs = append(req.Inputs, kserve.Input{Name: name, Tensor: inputs[name], Binary: binary})
	}
	req.Outputs = []kserve.RequestedOutput{{Name: "embedding", Binary: binary}}
	body, hl, err := kserve.EncodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	hdr := map[string]string{}
	if hl < len(body) {
		hdr[kserve.HeaderLength] = strconv.Itoa(hl)
	}
	r := post(t, base+"/v2/models/"+model+"/infer", "application/octet-stream", body, hdr)
	if r.code != http.StatusOK {
		t.Fatalf("v2 %s: %d %s", model, r.code, r.body)
	}
	respLen := int64(-1)
	if h := r.header.Get(kserve.HeaderLength); h != "" {
		respLen, _ = strconv.ParseInt(h, 10, 64)
	}
	if binary != (respLen >= 0) {
		t.Fatalf("binary %v but the response's %s is %q", binary, kserve.HeaderLength, r.header.Get(kserve.HeaderLength))
	}
	resp, err := kserve.DecodeResponse(r.body, respLen)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ModelName != model || resp.ID != req.ID || len(resp.Outputs) != 1 || resp.Outputs[0].Name != "embedding" {
		t.Fatalf("response %+v", resp)
	}
	return tensorRows(t, resp.Outputs[0].Tensor)
}

// Concurrent clients on both v2 encodings get, each, the embeddings of
// their own rows, as the encoder gives them in-process.
func TestV2ImageConcurrent(t *testing.T) {
	img, _ := encoders(t)
	_, base := start(t, serve.Config{MaxBatch: 8, MaxDelay: 20 * time.Millisecond})
	var wg sync.WaitGroup
	for c := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 1 + c%3
			x := randomPixels(img, n, uint64(c))
			flat, _ := x.Float32s()
			want, err := img.EmbedTensor(flat, n)
			if err != nil {
				t.Error(err)
				return
			}
			in := img.Engine().Inputs()[0].Name
			got := v2(t, base, "img", c%2 == 0, map[string]*onnxrt.Tensor{in: x}, []string{in})
			closeRows(t, fmt.Sprintf("client %d", c), got, want)
		}()
	}
	wg.Wait()
}

func TestV2Text(t *testing.T) {
	_, txt := encoders(t)
	_, base := start(t, serve.Config{})
	texts := []string{"The light of the Sun.", "colour and light"}
	ids, mask, _, err := txt.TextTensors(texts)
	if err != nil {
		t.Fatal(err)
	}
	want, err := txt.EmbedTexts(texts)
	if err != nil {
		t.Fatal(err)
	}
	in := txt.Engine().Inputs()
	for _, binary := range []bool{false, true} {
		got := v2(t, base, "txt", binary, map[string]*onnxrt.Tensor{in[0].Name: ids, in[1].Name: mask}, []string{in[1].Name, in[0].Name})
		closeRows(t, fmt.Sprintf("binary %v", binary), got, want)
	}
}

func pngBytes(t *testing.T, seed uint64, w, h int) []byte {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 2))
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range m.Pix {
		m.Pix[i] = uint8(r.IntN(256))
	}
	for i := 3; i < len(m.Pix); i += 4 {
		m.Pix[i] = 255
	}
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func embeddingsRequest(t *testing.T, model string, inputs []string, format string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"model": model, "input": inputs, "encoding_format": format})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// /v1/embeddings decodes and preprocesses images exactly as `sslzoo embed`
// does for files: the same pictures written to disk and read by
// preprocess.Files give the same embeddings.
func TestOpenAIImages(t *testing.T) {
	img, _ := encoders(t)
	_, base := start(t, serve.Config{})
	dir := t.TempDir()
	var urls, paths []string
	for i, size := range [][2]int{{28, 28}, {40, 31}, {9, 64}} {
		b := pngBytes(t, uint64(i), size[0], size[1])
		urls = append(urls, openai.DataURL("image/png", b))
		p := filepath.Join(dir, fmt.Sprintf("%d.png", i))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	var want [][]float32
	for b, err := range preprocess.Files(context.Background(), paths, img.Preprocess(), preprocess.Options{}) {
		if err != nil {
			t.Fatal(err)
		}
		rows, err := img.EmbedTensor(b.Data, len(b.Indices))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, rows...)
	}
	for _, format := range []string{openai.FormatFloat, openai.FormatBase64} {
		r := post(t, base+"/v1/embeddings", "application/json", embeddingsRequest(t, "img", urls, format), nil)
		if r.code != http.StatusOK {
			t.Fatalf("%d %s", r.code, r.body)
		}
		resp, err := openai.DecodeResponse(r.body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Model != "img" {
			t.Errorf("model %q", resp.Model)
		}
		closeRows(t, format, resp.Embeddings, want)
	}
}

func TestOpenAIText(t *testing.T) {
	_, txt := encoders(t)
	_, base := start(t, serve.Config{})
	texts := []string{"The light of the Sun.", "", "colour"}
	want, err := txt.EmbedTexts(texts)
	if err != nil {
		t.Fatal(err)
	}
	r := post(t, base+"/v1/embeddings", "application/json", embeddingsRequest(t, "txt", texts, ""), nil)
	if r.code != http.StatusOK {
		t.Fatalf("%d %s", r.code, r.body)
	}
	resp, err := openai.DecodeResponse(r.body)
	if err != nil {
		t.Fatal(err)
	}
	closeRows(t, "texts", resp.Embeddings, want)
	tokens := 0
	for _, s := range texts {
		ids, err := txt.Tokenize(s)
		if err != nil {
			t.Fatal(err)
		}
		tokens += len(ids)
	}
	if resp.PromptTokens != tokens {
		t.Errorf("usage prompt_tokens %d, want %d", resp.PromptTokens, tokens)
	}
	// One string, not a list.
	r = post(t, base+"/v1/embeddings", "application/json", []byte(`{"model":"txt","input":"colour"}`), nil)
	if r.code != http.StatusOK {
		t.Fatalf("%d %s", r.code, r.body)
	}
	resp, err = openai.DecodeResponse(r.body)
	if err != nil {
		t.Fatal(err)
	}
	closeRows(t, "one string", resp.Embeddings, want[2:])
}

// Each bad request gets its 4xx and a one-line JSON error, and the server
// goes on serving.
func TestBadInput(t *testing.T) {
	img, _ := encoders(t)
	_, base := start(t, serve.Config{BodyLimit: 64 << 10})
	in := img.Engine().Inputs()[0].Name
	v2Body := func(shape string, datatype string, data string) []byte {
		return []byte(`{"inputs":[{"name":"` + in + `","shape":` + shape + `,"datatype":"` + datatype + `","data":` + data + `}]}`)
	}
	ones := "[" + strings.TrimSuffix(strings.Repeat("1,", 784), ",") + "]"
	binHeader := []byte(`{"inputs":[{"name":"` + in + `","shape":[1,1,28,28],"datatype":"FP32","parameters":{"binary_data_size":3136}}]}`)
	cases := []struct {
		name   string
		path   string
		body   []byte
		header map[string]string
		code   int
		want   string
	}{
		{"malformed JSON", "/v2/models/img/infer", []byte(`{"inputs": [`), nil, 400, "malformed JSON"},
		{"wrong shape", "/v2/models/img/infer", v2Body("[1,1,28,27]", "FP32", "["+strings.TrimSuffix(strings.Repeat("1,", 28*27), ",")+"]"), nil, 400, "shape [1 1 28 27]"},
		{"wrong datatype", "/v2/models/img/infer", v2Body("[1,1,28,28]", "INT64", ones), nil, 400, "datatype INT64"},
		{"data count", "/v2/models/img/infer", v2Body("[2,1,28,28]", "FP32", ones), nil, 400, "input"},
		{"binary byte count", "/v2/models/img/infer", append(binHeader, make([]byte, 3000)...),
			map[string]string{kserve.HeaderLength: strconv.Itoa(len(binHeader))}, 400, "binary"},
		{"unknown input", "/v2/models/img/infer", []byte(`{"inputs":[{"name":"pixels","shape":[1],"datatype":"FP32","data":[1]}]}`), nil, 400, `no "` + in + `"`},
		{"unknown output", "/v2/models/img/infer", []byte(`{"inputs":[{"name":"` + in + `","shape":[1,1,28,28],"datatype":"FP32","data":` + ones + `}],"outputs":[{"name":"logits"}]}`), nil, 400, `no output "logits"`},
		{"unknown model v2", "/v2/models/nope/infer", v2Body("[1,1,28,28]", "FP32", ones), nil, 404, `"nope" is not served`},
		{"traversal", "/v2/models/..%2F..%2Fetc/infer", v2Body("[1,1,28,28]", "FP32", ones), nil, 404, "not served"},
		{"unknown model openai", "/v1/embeddings", []byte(`{"model":"nope","input":"x"}`), nil, 404, `"nope" is not served`},
		{"oversized body", "/v1/embeddings", []byte(`{"model":"txt","input":"` + strings.Repeat("a", 70<<10) + `"}`), nil, 413, "limit"},
		{"undecodable image", "/v1/embeddings", []byte(`{"model":"img","input":["data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA"]}`), nil, 400, "input[0]"},
		{"text to an image model", "/v1/embeddings", []byte(`{"model":"img","input":["a cat"]}`), nil, 400, "data:image/png;base64"},
		{"empty input list", "/v1/embeddings", []byte(`{"model":"txt","input":[]}`), nil, 400, "empty list"},
		{"no model", "/v1/embeddings", []byte(`{"input":"x"}`), nil, 400, `no "model"`},
		{"bad token id", "/v2/models/txt/infer", []byte(`{"inputs":[{"name":"input_ids","shape":[1,16],"datatype":"INT64","data":[` +
			strings.Repeat("1,", 15) + `999999]},{"name":"attention_mask","shape":[1,16],"datatype":"INT64","data":[` + strings.TrimSuffix(strings.Repeat("1,", 16), ",") + `]}]}`), nil, 400, "outside the vocabulary"},
		{"empty body", "/v1/embeddings", nil, nil, 400, "empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := post(t, base+c.path, "application/json", c.body, c.header)
			if r.code != c.code {
				t.Fatalf("status %d, want %d: %s", r.code, c.code, r.body)
			}
			var e struct{ Error string }
			if err := json.Unmarshal(r.body, &e); err != nil || e.Error == "" {
				t.Fatalf("body %q is not a JSON error: %v", r.body, err)
			}
			if !strings.Contains(e.Error, c.want) {
				t.Errorf("error %q does not say %q", e.Error, c.want)
			}
			if strings.Contains(e.Error, "\n") {
				t.Errorf("error %q spans lines", e.Error)
			}
		})
	}
	r := get(t, base+"/v2/models/img/infer", nil)
	if r.code != http.StatusMethodNotAllowed {
		t.Errorf("GET infer: %d", r.code)
	}
	// Still serving.
	x := randomPixels(img, 1, 9)
	flat, _ := x.Float32s()
	want, err := img.EmbedTensor(flat, 1)
	if err != nil {
		t.Fatal(err)
	}
	closeRows(t, "after bad input", v2(t, base, "img", false, map[string]*onnxrt.Tensor{in: x}, []string{in}), want)
}

func TestToken(t *testing.T) {
	_, base := start(t, serve.Config{Token: "s3cret"})
	body := []byte(`{"model":"txt","input":"colour"}`)
	for _, c := range []struct {
		auth string
		code int
	}{{"", 401}, {"Bearer wrong", 401}, {"Bearer s3cret", 200}, {"s3cret", 401}} {
		r := post(t, base+"/v1/embeddings", "application/json", body, map[string]string{"Authorization": c.auth})
		if r.code != c.code {
			t.Errorf("Authorization %q: %d %s, want %d", c.auth, r.code, r.body, c.code)
		}
		if c.code == 401 && !bytes.Contains(r.body, []byte(`"error"`)) {
			t.Errorf("401 body %s", r.body)
		}
	}
	for _, p := range []string{"/v2/health/live", "/v2/health/ready"} {
		if r := get(t, base+p, nil); r.code != 200 {
			t.Errorf("%s without a token: %d", p, r.code)
		}
	}
	for _, p := range []string{"/v2", "/v2/models/img", "/metrics"} {
		if r := get(t, base+p, nil); r.code != 401 {
			t.Errorf("%s without a token: %d", p, r.code)
		}
	}
}

func TestMetadata(t *testing.T) {
	img, _ := encoders(t)
	_, base := start(t, serve.Config{})
	r := get(t, base+"/v2/models/img", nil)
	if r.code != 200 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	var md kserve.ModelMetadata
	if err := json.Unmarshal(r.body, &md); err != nil {
		t.Fatal(err)
	}
	c, h, w := img.Preprocess().Shape()
	if md.Name != "img" || len(md.Inputs) != 1 || md.Inputs[0].Datatype != "FP32" ||
		fmt.Sprint(md.Inputs[0].Shape) != fmt.Sprint([]int64{-1, int64(c), int64(h), int64(w)}) {
		t.Errorf("metadata %+v", md)
	}
	pre, _ := json.Marshal(md.Parameters["preprocess"])
	var spec preprocess.Spec
	if err := json.Unmarshal(pre, &spec); err != nil || fmt.Sprint(spec) != fmt.Sprint(img.Preprocess()) {
		t.Errorf("preprocess %s, want %+v (%v)", pre, img.Preprocess(), err)
	}
	for _, p := range []string{"/v2/models/img/ready", "/v2/models/img/versions/1", "/v2", "/v2/health/ready"} {
		if r := get(t, base+p, nil); r.code != 200 {
			t.Errorf("%s: %d %s", p, r.code, r.body)
		}
	}
	for _, p := range []string{"/v2/models/img/versions/2", "/v2/models/nope/ready", "/nothing"} {
		if r := get(t, base+p, nil); r.code != 404 || !bytes.Contains(r.body, []byte(`"error"`)) {
			t.Errorf("%s: %d %s", p, r.code, r.body)
		}
	}
}

// With requests held in the queue by a long delay, the next one past the
// queue's size gets 503 and Retry-After.
func TestOverload(t *testing.T) {
	_, base := start(t, serve.Config{MaxBatch: 64, MaxDelay: 400 * time.Millisecond, Queue: 1})
	body := []byte(`{"model":"txt","input":"colour"}`)
	first := make(chan reply, 1)
	go func() { first <- post(t, base+"/v1/embeddings", "application/json", body, nil) }()
	time.Sleep(100 * time.Millisecond)
	r := post(t, base+"/v1/embeddings", "application/json", body, nil)
	if r.code != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !bytes.Contains(r.body, []byte("queue")) {
		t.Errorf("second request: %d %q %s", r.code, r.header.Get("Retry-After"), r.body)
	}
	if r := <-first; r.code != 200 {
		t.Errorf("first request: %d %s", r.code, r.body)
	}
}

// A client that goes away leaves its batch; the others in it are
// answered, and the failure is counted as 499.
func TestCancel(t *testing.T) {
	srv, base := start(t, serve.Config{MaxBatch: 64, MaxDelay: 300 * time.Millisecond})
	body := []byte(`{"model":"txt","input":"colour"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	stay := make(chan reply, 1)
	go func() { stay <- post(t, base+"/v1/embeddings", "application/json", body, nil) }()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/embeddings", bytes.NewReader(body))
	if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the cancelled request: %v", err)
	}
	if r := <-stay; r.code != 200 {
		t.Errorf("the request that stayed: %d %s", r.code, r.body)
	}
	m := scrape(t, srv)
	if v := m.value("sslzoo_request_failure_total", `code="499"`, `model="txt"`); v != 1 {
		t.Errorf("499 failures %v, want 1", v)
	}
}

func TestTimeout(t *testing.T) {
	_, base := start(t, serve.Config{MaxBatch: 64, MaxDelay: time.Second, Timeout: 50 * time.Millisecond})
	r := post(t, base+"/v1/embeddings", "application/json", []byte(`{"model":"txt","input":"colour"}`), nil)
	if r.code != http.StatusGatewayTimeout || !bytes.Contains(r.body, []byte("timeout")) {
		t.Errorf("%d %s", r.code, r.body)
	}
}

// Requests arriving together share batches, and the metrics say so.
func TestBatchingAndMetrics(t *testing.T) {
	srv, base := start(t, serve.Config{MaxBatch: 32, MaxDelay: 100 * time.Millisecond})
	body := []byte(`{"model":"txt","input":"colour"}`)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := post(t, base+"/v1/embeddings", "application/json", body, nil); r.code != 200 {
				t.Errorf("%d %s", r.code, r.body)
			}
		}()
	}
	wg.Wait()
	post(t, base+"/v1/embeddings", "application/json", []byte(`{"model":"txt","input":[]}`), nil)
	m := scrape(t, srv)
	if v := m.value("sslzoo_request_success_total", `model="txt"`, `protocol="openai"`); v != 16 {
		t.Errorf("successes %v, want 16", v)
	}
	if v := m.value("sslzoo_request_failure_total", `model=""`, `code="400"`); v != 1 {
		t.Errorf("400 failures %v, want 1", v)
	}
	if v := m.value("sslzoo_inference_rows_total", `model="txt"`); v != 16 {
		t.Errorf("rows %v, want 16", v)
	}
	batches := m.value("sslzoo_batch_size_count", `model="txt"`)
	if rows := m.value("sslzoo_batch_size_sum", `model="txt"`); rows != 16 || batches < 1 || batches >= 16 {
		t.Errorf("%v rows in %v batches: want 16 rows in fewer than 16 batches", rows, batches)
	}
	if v := m.value("sslzoo_request_duration_seconds_count", `model="txt"`, `protocol="openai"`); v != 16 {
		t.Errorf("latency observations %v", v)
	}
	if v := m.value("sslzoo_queue_duration_seconds_sum", `model="txt"`); !(v > 0) {
		t.Errorf("queue time %v", v)
	}
	if v := m.value("sslzoo_queue_depth", `model="txt"`); v != 0 {
		t.Errorf("queue depth %v after the requests", v)
	}
}

type samples map[string][]sample

type sample struct {
	labels string
	value  float64
}

// value sums the samples of a series whose labels hold every filter.
func (s samples) value(name string, filters ...string) float64 {
	v := 0.0
	for _, smp := range s[name] {
		ok := true
		for _, f := range filters {
			ok = ok && strings.Contains(smp.labels, f)
		}
		if ok {
			v += smp.value
		}
	}
	return v
}

// scrape reads /metrics with Prometheus' own text parser.
func scrape(t *testing.T, srv *serve.Server) samples {
	t.Helper()
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := samples{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			ls := strings.Join(labels, ",")
			switch {
			case m.Counter != nil:
				out[name] = append(out[name], sample{ls, m.Counter.GetValue()})
			case m.Gauge != nil:
				out[name] = append(out[name], sample{ls, m.Gauge.GetValue()})
			case m.Histogram != nil:
				out[name+"_count"] = append(out[name+"_count"], sample{ls, float64(m.Histogram.GetSampleCount())})
				out[name+"_sum"] = append(out[name+"_sum"], sample{ls, m.Histogram.GetSampleSum()})
			}
		}
	}
	return out
}

// Shutdown lets a request in flight finish, refuses new ones with 503,
// and fails readiness meanwhile.
func TestShutdown(t *testing.T) {
	img, txt := encoders(t)
	srv, err := serve.New(serve.Config{MaxBatch: 64, MaxDelay: 300 * time.Millisecond},
		serve.Model{Name: "img", Encoder: img}, serve.Model{Name: "txt", Encoder: txt})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	base := "http://" + ln.Addr().String()
	inflight := make(chan reply, 1)
	go func() {
		inflight <- post(t, base+"/v1/embeddings", "application/json", []byte(`{"model":"txt","input":"colour"}`), nil)
	}()
	time.Sleep(100 * time.Millisecond)
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	time.Sleep(50 * time.Millisecond)
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/embeddings", strings.NewReader(`{"model":"txt","input":"x"}`)))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("a request while draining: %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v2/health/ready", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("readiness while draining: %d", rec.Code)
	}
	if r := <-inflight; r.code != 200 {
		t.Errorf("the request in flight: %d %s", r.code, r.body)
	}
	if err := <-shut; err != nil {
		t.Error(err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve after Shutdown: %v", err)
	}
}

func TestModelSpec(t *testing.T) {
	for spec, want := range map[string]string{
		"simclr-resnet18-fmnist":  "simclr-resnet18-fmnist",
		"/models/enc.onnx":        "enc",
		"fast=/models/enc.onnx":   "fast",
		"fast=simclr-resnet18-fm": "fast",
	} {
		if name, _, err := serve.ParseModelSpec(spec); err != nil || name != want {
			t.Errorf("%q: %q %v, want %q", spec, name, err, want)
		}
	}
	for _, spec := range []string{"../x=a.onnx", "a/b=c.onnx", "x=", ".hidden.onnx"} {
		if _, _, err := serve.ParseModelSpec(spec); err == nil {
			t.Errorf("%q accepted", spec)
		}
	}
	img, _ := encoders(t)
	if _, err := serve.New(serve.Config{}, serve.Model{Name: "a", Encoder: img}, serve.Model{Name: "a", Encoder: img}); err == nil {
		t.Error("a name given twice is accepted")
	}
}
