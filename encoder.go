package sslzoo

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/sslzoo/sslzoo/data/preprocess"
	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/zoo"
	"github.com/sslzoo/sslzoo/zoo/load"
)

// Encoder embeds images, or texts, with an exported model.
type Encoder struct {
	engine onnxrt.Engine
	pre    preprocess.Spec
	text   *textModel // nil for an image model
	out    int        // index of the "embedding" output
	dim    int
	path   string
	// MaxBatch caps the images one engine run takes (default 64).
	MaxBatch int
}

// Load pulls a zoo entry (or opens an .onnx file) and returns an encoder
// for it. A zoo entry is exported to ONNX beside its weights in the cache
// the first time, and again only when the weights change.
func Load(ctx context.Context, name string, opts *Options) (*Encoder, error) {
	o := opts.orDefault()
	if strings.HasSuffix(name, ".onnx") {
		return Open(name, o)
	}
	path, err := ModelPath(ctx, name, o)
	if err != nil {
		return nil, err
	}
	return Open(path, o)
}

// ModelPath is the ONNX file of a zoo entry in the cache, exported from its
// pulled weights when missing or stale.
func ModelPath(ctx context.Context, name string, opts *Options) (string, error) {
	o := opts.orDefault()
	e, err := zoo.Lookup(name)
	if err != nil {
		return "", err
	}
	weights, err := Pull(ctx, name, o)
	if err != nil {
		return "", err
	}
	onnx := filepath.Join(filepath.Dir(weights), e.Name+".onnx")
	if fresh, err := exportedFrom(onnx, weights, e); err != nil {
		return "", err
	} else if fresh {
		return onnx, nil
	}
	if err := ExportWeights(weights, onnx, ExportOptions{Entry: &e, Version: "zoo"}); err != nil {
		return "", fmt.Errorf("sslzoo: export %s: %w", name, err)
	}
	return onnx, nil
}

// exportedFrom reports whether onnx exists, records weights' sha256, and
// carries the entry's current version and preprocessing (an export by an
// older sslzoo may have recorded them differently).
func exportedFrom(onnx, weights string, e zoo.Entry) (bool, error) {
	info, err := onnxrt.ReadModelInfoFile(onnx)
	if err != nil {
		return false, nil // missing or unreadable: export it (again)
	}
	if info.Metadata["sslzoo.entry_version"] != e.Version {
		return false, nil
	}
	if e.Preprocess != nil {
		var got preprocess.Spec
		if json.Unmarshal([]byte(info.Metadata["sslzoo.preprocess"]), &got) != nil {
			return false, nil
		}
		want := *e.Preprocess
		got.Normalize()
		want.Normalize()
		if !reflect.DeepEqual(got, want) {
			return false, nil
		}
	}
	lb, err := load.File(weights, load.Options{})
	if err != nil {
		return false, err
	}
	return info.Metadata["sslzoo.weights_sha256"] == lb.SHA256, nil
}

// Open returns an encoder for an exported model: an image model whose
// sslzoo.preprocess metadata says how to prepare images, or a text model
// (int64 input_ids and attention_mask) with its tokenizer.
func Open(path string, opts *Options) (*Encoder, error) {
	o := opts.orDefault()
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	dev, err := onnxrt.ParseDevice(o.Device)
	if err != nil {
		return nil, err
	}
	if dev.CUDA && o.Engine == onnxrt.EngineGo {
		return nil, fmt.Errorf("device %v: the Go engine runs on the CPU only; use the ort engine for CUDA", dev)
	}
	kind := o.Engine
	if dev.CUDA {
		kind = onnxrt.EngineORT // auto must not fall back to the Go engine and the CPU
	}
	eng, err := onnxrt.OpenEngine(path, kind, onnxrt.Options{IntraOpThreads: o.Threads, NoSpin: true, Device: dev})
	if err != nil {
		return nil, err
	}
	var enc *Encoder
	if isTextModel(eng.Inputs()) {
		enc, err = newTextEncoder(eng, path, o.Vocab)
	} else {
		enc, err = newEncoder(eng, path)
	}
	if err != nil {
		eng.Close()
		return nil, err
	}
	return enc, nil
}

func newEncoder(eng onnxrt.Engine, path string) (*Encoder, error) {
	raw := eng.Metadata()["sslzoo.preprocess"]
	if raw == "" {
		return nil, fmt.Errorf("%s records no sslzoo.preprocess metadata; embed preprocessed tensors with 'sslzoo embed --input X.npy'", path)
	}
	p, err := parsePreprocess(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	in := eng.Inputs()
	if len(in) != 1 || in[0].DType != onnxrt.Float32 || len(in[0].Shape) != 4 {
		return nil, fmt.Errorf("%s: an image encoder takes one float32 [batch, C, H, W] input, this model takes %v", path, in)
	}
	if c, h, w := p.Shape(); in[0].Shape[1] != c || in[0].Shape[2] != h || in[0].Shape[3] != w {
		return nil, fmt.Errorf("%s: preprocessing makes [%d %d %d] but the model takes %v", path, c, h, w, in[0])
	}
	e := &Encoder{engine: eng, pre: p, path: path}
	e.pickOutput()
	return e, nil
}

// parsePreprocess reads sslzoo.preprocess metadata.
func parsePreprocess(raw string) (preprocess.Spec, error) {
	var p preprocess.Spec
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return p, fmt.Errorf("bad sslzoo.preprocess metadata: %w", err)
	}
	p.Normalize()
	return p, p.Validate()
}

// pickOutput selects the "embedding" output (else the first) and reads its
// width.
func (e *Encoder) pickOutput() {
	e.out = 0
	for i, v := range e.engine.Outputs() {
		if v.Name == "embedding" {
			e.out = i
		}
	}
	if sh := e.engine.Outputs()[e.out].Shape; len(sh) == 2 && sh[1] > 0 {
		e.dim = int(sh[1])
	}
}

// Preprocess is how the encoder prepares images (the model's metadata).
func (e *Encoder) Preprocess() preprocess.Spec { return e.pre }

// Path is the ONNX file the encoder runs.
func (e *Encoder) Path() string { return e.path }

// Dim is the embedding width (0 when the model leaves it symbolic).
func (e *Encoder) Dim() int { return e.dim }

// Engine is the loaded model, for callers that run tensors themselves.
func (e *Encoder) Engine() onnxrt.Engine { return e.engine }

// Close releases the engine.
func (e *Encoder) Close() error { return e.engine.Close() }

func (e *Encoder) maxBatch() int {
	if e.MaxBatch > 0 {
		return e.MaxBatch
	}
	return 64
}

// EmbedImages preprocesses each image as the model's metadata says and
// returns one embedding per image, in order.
func (e *Encoder) EmbedImages(imgs []image.Image) ([][]float32, error) {
	if e.text != nil {
		return nil, fmt.Errorf("%s is a text model; embed texts with it", e.path)
	}
	var out [][]float32
	for lo := 0; lo < len(imgs); lo += e.maxBatch() {
		hi := min(lo+e.maxBatch(), len(imgs))
		x, err := e.ImageTensor(imgs[lo:hi])
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", lo, err)
		}
		res, err := e.engine.Run(x)
		if err != nil {
			return nil, err
		}
		rows, err := e.rows(res, hi-lo)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	return out, nil
}

// ImageTensor preprocesses images as the model's metadata says into the
// model's input tensor, [len(imgs), C, H, W], for callers that run the
// engine (or batch several requests) themselves.
func (e *Encoder) ImageTensor(imgs []image.Image) (*onnxrt.Tensor, error) {
	if e.text != nil {
		return nil, fmt.Errorf("%s is a text model; embed texts with it", e.path)
	}
	n := e.pre.Len()
	x := make([]float32, len(imgs)*n)
	for i, img := range imgs {
		if err := e.pre.ApplyInto(x[i*n:(i+1)*n], img); err != nil {
			return nil, fmt.Errorf("image %d: %w", i, err)
		}
	}
	c, h, w := e.pre.Shape()
	return onnxrt.NewTensor([]int{len(imgs), c, h, w}, x), nil
}

// EmbeddingOutput is the index, among the engine's outputs, of the one
// that holds the embeddings.
func (e *Encoder) EmbeddingOutput() int { return e.out }

// Rows splits the embedding output of an engine run over n inputs into n
// rows (views, not copies).
func (e *Encoder) Rows(res []*onnxrt.Tensor, n int) ([][]float32, error) { return e.rows(res, n) }

// EmbedTensor runs n preprocessed images (n*C*H*W values, NCHW) and
// returns their embeddings.
func (e *Encoder) EmbedTensor(x []float32, n int) ([][]float32, error) {
	if e.text != nil {
		return nil, fmt.Errorf("%s is a text model; embed texts with it", e.path)
	}
	c, h, w := e.pre.Shape()
	if len(x) != n*c*h*w {
		return nil, fmt.Errorf("%d values for %d images of %dx%dx%d", len(x), n, c, h, w)
	}
	res, err := e.engine.Run(onnxrt.NewTensor([]int{n, c, h, w}, x))
	if err != nil {
		return nil, err
	}
	return e.rows(res, n)
}

// rows splits the embedding output of a run over n inputs into n rows.
func (e *Encoder) rows(res []*onnxrt.Tensor, n int) ([][]float32, error) {
	flat, err := res[e.out].Float32s()
	if err != nil {
		return nil, err
	}
	if n == 0 || len(flat)%n != 0 {
		return nil, fmt.Errorf("model returned %d values for %d images", len(flat), n)
	}
	d := len(flat) / n
	rows := make([][]float32, n)
	for i := range rows {
		rows[i] = flat[i*d : (i+1)*d : (i+1)*d]
	}
	return rows, nil
}
