package conformance

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/data/augment"
	"github.com/sslzoo/sslzoo/export"
	"github.com/sslzoo/sslzoo/runtime"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/zoo"
)

// DefaultSeq is the sequence length text backbones are exported at when
// none is given. The tracer makes only the batch axis symbolic, so the
// length is fixed in the file (pad shorter texts, with attention_mask 0).
const DefaultSeq = 128

// Backbone is a zoo architecture made ready for export: the model, the
// export.Spec that traces it, and what its inputs look like.
//
// Image backbones take "pixel_values" [batch, C, H, W] float32 and return
// "embedding" (the pooled features). Text backbones (BERT) take int64
// "input_ids" and "attention_mask" [batch, Seq] and return "embedding", the
// final hidden state of the first token ([CLS]) [batch, Hidden], and
// "last_hidden_state" [batch, Seq, Hidden].
type Backbone struct {
	Arch  string
	Model zoo.Backbone // in eval mode
	Spec  export.Spec
	// Text is set for token-id backbones.
	Text bool
	// Channels, Height, Width are the image input size; Seq, Vocab and
	// PadID describe the text input.
	Channels, Height, Width int
	Seq, Vocab, PadID       int
}

// BackboneOptions adjust an export.
type BackboneOptions struct {
	// ImageSize overrides the square input size of a ResNet (default 32
	// with the CIFAR stem, else 224). ViTs are exported at their training
	// size.
	ImageSize int
	// Seq is the text sequence length (default DefaultSeq, at most the
	// model's position table).
	Seq int
	// Metadata is written into the file; Backbone, EmbeddingDim and the
	// preprocessing are filled in when empty.
	Metadata export.Metadata
	// Pool picks the "embedding" of a ViT or BERT: "cls" or "mean" (see
	// vitPooled and bertPool); "" is the ViT's own pooling and BERT's
	// [CLS]. It is recorded under the "sslzoo.pooling" metadata key.
	Pool string
}

// NewBackbone wraps a backbone (*zoo.ResNet, *zoo.ViT or *zoo.BERT, e.g.
// from zoo.Spec.Build, perhaps with loaded weights) for export under the
// name arch. It switches m to eval mode.
func NewBackbone(arch string, m zoo.Backbone, opts BackboneOptions) (*Backbone, error) {
	b := &Backbone{Arch: arch, Model: m}
	meta := opts.Metadata
	if meta.Backbone == "" {
		meta.Backbone = arch
	}
	if meta.EmbeddingDim == 0 {
		meta.EmbeddingDim = m.FeatureDim()
	}
	var im export.ImageModel
	size := opts.ImageSize
	cifar := false
	switch mm := m.(type) {
	case *zoo.ResNet:
		im, b.Channels = mm, mm.Config.InChannels
		cifar = mm.Config.Stem == "cifar"
		if size == 0 {
			size = 224
			if cifar {
				size = 32
			}
		}
	case *zoo.ViT:
		im, b.Channels = mm, mm.Config.InChannels
		if size != 0 && size != mm.Config.ImageSize {
			return nil, fmt.Errorf("conformance: %s is exported at its training size %d, not %d", arch, mm.Config.ImageSize, size)
		}
		size = mm.Config.ImageSize
	case *zoo.BERT:
		return newTextBackbone(b, mm, opts.Seq, opts.Pool, meta)
	default:
		return nil, fmt.Errorf("conformance: %s: cannot export a %T", arch, m)
	}
	if size < 1 {
		return nil, fmt.Errorf("conformance: %s: image size %d", arch, size)
	}
	b.Height, b.Width = size, size
	if meta.Preprocess == nil {
		meta.Preprocess = imagePreprocess(cifar, b.Channels, size)
	}
	var s export.Spec
	var err error
	if vit, ok := m.(*zoo.ViT); ok {
		s, err = vitSpec(arch, vit, opts.Pool, b.Channels, size, meta)
	} else if opts.Pool != "" {
		err = fmt.Errorf("conformance: %s: pooling applies to ViT and BERT backbones, not %T", arch, m)
	} else {
		s, err = export.ImageSpec(arch, im, b.Channels, size, size, meta)
	}
	if err != nil {
		return nil, err
	}
	b.Spec = s
	return b, nil
}

func newTextBackbone(b *Backbone, bm *zoo.BERT, seq int, pool string, meta export.Metadata) (*Backbone, error) {
	cfg := bm.Config
	if err := CheckPool(pool); err != nil {
		return nil, fmt.Errorf("conformance: %s: %w", b.Arch, err)
	}
	if pool == "" {
		pool = PoolCLS
	}
	embedding := "final hidden state of the first token ([CLS])"
	if pool == PoolMean {
		embedding = "mean of the final hidden states where attention_mask is 1"
	}
	if seq == 0 {
		seq = min(DefaultSeq, cfg.MaxPositions)
	}
	if seq < 1 || seq > cfg.MaxPositions {
		return nil, fmt.Errorf("conformance: %s: sequence length %d outside 1..%d (the model's positions)", b.Arch, seq, cfg.MaxPositions)
	}
	b.Text, b.Seq, b.Vocab, b.PadID = true, seq, cfg.VocabSize, cfg.PadTokenID
	text, _ := json.Marshal(map[string]any{
		"seq_len":        seq,
		"vocab_size":     cfg.VocabSize,
		"pad_id":         cfg.PadTokenID,
		"attention_mask": "1 for tokens, 0 for padding",
		"embedding":      embedding,
	})
	extra := map[string]string{}
	for k, v := range meta.Extra {
		extra[k] = v
	}
	extra["sslzoo.text"] = string(text)
	extra[PoolingKey] = pool
	meta.Extra = extra
	props, err := meta.Props()
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", b.Arch, err)
	}
	bm.SetTraining(false)
	hidden := cfg.Hidden
	b.Spec = export.Spec{
		Name: b.Arch,
		Inputs: []export.Input{
			{Name: "input_ids", Shape: []int{1, seq}, Int: true, Low: 0, High: cfg.VocabSize},
			{Name: "attention_mask", Shape: []int{1, seq}, Int: true, Low: 0, High: 2},
		},
		Outputs: []string{"embedding", "last_hidden_state"},
		Forward: func(tp *autograd.Tape, in []*autograd.Var) []*autograd.Var {
			n := in[0].Shape()[0]
			out := bm.Forward(tp, zoo.BERTInput{Batch: n, Seq: seq, IDs: export.IntsOf(in[0]), Mask: export.IntsOf(in[1])})
			return []*autograd.Var{BERTPool(tp, pool, out.Sequence, in[1], n, seq, hidden), out.Sequence}
		},
		Module:          bm,
		Metadata:        props,
		ProducerVersion: meta.Version,
	}
	return b, nil
}

// imagePreprocess is the evaluation preprocessing the architecture's
// recipes use: CIFAR statistics at 32 pixels for the CIFAR stem, ImageNet
// statistics with a center crop otherwise.
func imagePreprocess(cifar bool, channels, size int) *export.Preprocess {
	p := &export.Preprocess{Layout: "NCHW", Channels: "RGB", Size: [2]int{size, size}, Resize: "bilinear", Crop: "center", Scale: 1.0 / 255}
	norm := augment.ImageNetNorm
	if cifar {
		norm, p.Crop = augment.CIFAR10Norm, "none"
	}
	p.Mean, p.Std = slices.Clone(norm.Mean), slices.Clone(norm.Std)
	if channels == 1 {
		p.Channels = "L"
		p.Mean, p.Std = []float64{0.5}, []float64{0.5}
	} else if channels != 3 {
		p.Channels = fmt.Sprintf("%d channels", channels)
		p.Mean, p.Std = nil, nil
	}
	return p
}

// RandomInputs makes a batch the backbone accepts: standard normal pixels,
// or token ids with right padding (rows of different lengths, id PadID and
// mask 0 past each row's length; the first token is never padding).
func (b *Backbone) RandomInputs(rng *rand.Rand, batch int) []*runtime.Tensor {
	if !b.Text {
		x := make([]float32, batch*b.Channels*b.Height*b.Width)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		return []*runtime.Tensor{runtime.NewTensor([]int{batch, b.Channels, b.Height, b.Width}, x)}
	}
	ids, mask := make([]int64, batch*b.Seq), make([]int64, batch*b.Seq)
	for r := range batch {
		n := b.Seq - (r*(b.Seq/4+1))%b.Seq // full length on row 0, shorter later
		for j := range b.Seq {
			i := r*b.Seq + j
			if j < n {
				ids[i], mask[i] = int64(1+rng.IntN(b.Vocab-1)), 1
				if ids[i] == int64(b.PadID) {
					ids[i] = int64((b.PadID + 1) % b.Vocab)
				}
			} else {
				ids[i] = int64(b.PadID)
			}
		}
	}
	return []*runtime.Tensor{runtime.NewTensor([]int{batch, b.Seq}, ids), runtime.NewTensor([]int{batch, b.Seq}, mask)}
}

// GoForward runs the model's own forward (the reference the exports are
// judged against) on engine-style inputs and copies the outputs off the
// tape.
func (b *Backbone) GoForward(inputs []*runtime.Tensor) ([]*runtime.Tensor, error) {
	return goForward(b.Spec.Forward, inputs)
}

// goForward runs fwd on runtime tensors. Int64 inputs reach the forward as
// float32 values, as the tracer passes them (read them with export.IntsOf).
func goForward(fwd func(*autograd.Tape, []*autograd.Var) []*autograd.Var, inputs []*runtime.Tensor) ([]*runtime.Tensor, error) {
	vars := make([]*autograd.Var, len(inputs))
	for i, t := range inputs {
		x := tensor.New(t.Shape...)
		switch d := t.Data.(type) {
		case []float32:
			copy(x.Data, d)
		case []int64:
			for j, v := range d {
				x.Data[j] = float32(v)
			}
		default:
			return nil, fmt.Errorf("input %d: %v tensors are not supported by the Go forward", i, t.DType)
		}
		vars[i] = autograd.Const(x)
	}
	tp := autograd.NewTape()
	defer tp.Reset()
	var outs []*runtime.Tensor
	err := autograd.Catch(func() {
		tp.NoGrad(func() {
			for _, o := range fwd(tp, vars) {
				outs = append(outs, runtime.NewTensor(o.Value.Shape, slices.Clone(o.Value.Data)))
			}
		})
	})
	if err != nil {
		return nil, err
	}
	return outs, nil
}
