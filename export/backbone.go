package export

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/sslzoo/sslzoo/data/text"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/data/augment"
	"github.com/sslzoo/sslzoo/zoo"
)

// DefaultSeq is the sequence length text backbones are exported at when
// none is given. The tracer makes only the batch axis symbolic, so the
// length is fixed in the file (pad shorter texts, with attention_mask 0).
const DefaultSeq = 128

// Backbone is a zoo architecture made ready for export: the model, the
// Spec that traces it, and what its inputs look like.
//
// Image backbones take "pixel_values" [batch, C, H, W] float32 and return
// "embedding" (the pooled features). Text backbones (BERT) take int64
// "input_ids" and "attention_mask" [batch, Seq] and return "embedding"
// (pooled as BackboneOptions.Pool says; [CLS] by default) [batch, Hidden]
// and "last_hidden_state" [batch, Seq, Hidden].
type Backbone struct {
	Arch  string
	Model zoo.Backbone // in eval mode
	Spec  Spec
	// Text is set for token-id backbones.
	Text bool
	// Channels, Height, Width are the image input size; Seq, Vocab and
	// PadID describe the text input.
	Channels, Height, Width int
	Seq, Vocab, PadID       int
	// Preprocess is what the file records for image inputs (nil for text).
	Preprocess *Preprocess
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
	Metadata Metadata
	// Pool picks the "embedding" of a ViT or BERT: PoolCLS or PoolMean
	// (see CheckPool and BERTPool); "" is the ViT's own pooling and BERT's
	// [CLS]. It is recorded under the PoolingKey metadata key.
	Pool string
	// Tokenizer, for a text backbone, is recorded in the file (settings and
	// vocabulary, truncating at Seq), so that the ONNX file alone
	// tokenizes as the model was trained.
	Tokenizer *text.Tokenizer
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
	var im ImageModel
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
			return nil, fmt.Errorf("export: %s is exported at its training size %d, not %d", arch, mm.Config.ImageSize, size)
		}
		size = mm.Config.ImageSize
	case *zoo.BERT:
		return newTextBackbone(b, mm, opts.Seq, opts.Pool, opts.Tokenizer, meta)
	default:
		return nil, fmt.Errorf("export: %s: cannot export a %T", arch, m)
	}
	if size < 1 {
		return nil, fmt.Errorf("export: %s: image size %d", arch, size)
	}
	b.Height, b.Width = size, size
	if meta.Preprocess == nil {
		meta.Preprocess = imagePreprocess(cifar, b.Channels, size)
	}
	b.Preprocess = meta.Preprocess
	var s Spec
	var err error
	if vit, ok := m.(*zoo.ViT); ok {
		s, err = vitSpec(arch, vit, opts.Pool, b.Channels, size, meta)
	} else if opts.Pool != "" {
		err = fmt.Errorf("export: %s: pooling applies to ViT and BERT backbones, not %T", arch, m)
	} else {
		s, err = ImageSpec(arch, im, b.Channels, size, size, meta)
	}
	if err != nil {
		return nil, err
	}
	b.Spec = s
	return b, nil
}

func newTextBackbone(b *Backbone, bm *zoo.BERT, seq int, pool string, tok *text.Tokenizer, meta Metadata) (*Backbone, error) {
	cfg := bm.Config
	if err := CheckPool(pool); err != nil {
		return nil, fmt.Errorf("export: %s: %w", b.Arch, err)
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
		return nil, fmt.Errorf("export: %s: sequence length %d outside 1..%d (the model's positions)", b.Arch, seq, cfg.MaxPositions)
	}
	b.Text, b.Seq, b.Vocab, b.PadID = true, seq, cfg.VocabSize, cfg.PadTokenID
	textMeta, _ := json.Marshal(map[string]any{
		"seq_len":        seq,
		"vocab_size":     cfg.VocabSize,
		"pad_id":         cfg.PadTokenID,
		"attention_mask": "1 for tokens, 0 for padding",
		"embedding":      embedding,
	})
	meta = meta.WithExtra("sslzoo.text", string(textMeta)).WithExtra(PoolingKey, pool)
	if tok != nil {
		if n := tok.Vocab().Size(); n != cfg.VocabSize {
			return nil, fmt.Errorf("export: %s: the tokenizer has %d tokens but the model's vocabulary has %d", b.Arch, n, cfg.VocabSize)
		}
		// Truncating at the exported length is what embedding with it does.
		tc := tok.Config()
		tc.MaxLen = seq
		t, err := text.New(tok.Vocab(), tc)
		if err != nil {
			return nil, fmt.Errorf("export: %s: %w", b.Arch, err)
		}
		for k, v := range t.MetadataEntries() {
			meta = meta.WithExtra(k, v)
		}
	}
	props, err := meta.Props()
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", b.Arch, err)
	}
	bm.SetTraining(false)
	hidden := cfg.Hidden
	b.Spec = Spec{
		Name: b.Arch,
		Inputs: []Input{
			{Name: "input_ids", Shape: []int{1, seq}, Int: true, Low: 0, High: cfg.VocabSize},
			{Name: "attention_mask", Shape: []int{1, seq}, Int: true, Low: 0, High: 2},
		},
		Outputs: []string{"embedding", "last_hidden_state"},
		Forward: func(tp *autograd.Tape, in []*autograd.Var) []*autograd.Var {
			n := in[0].Shape()[0]
			out := bm.Forward(tp, zoo.BERTInput{Batch: n, Seq: seq, IDs: IntsOf(in[0]), Mask: IntsOf(in[1])})
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
func imagePreprocess(cifar bool, channels, size int) *Preprocess {
	// torchvision's eval transform: the shorter side to 256 for a 224 crop.
	p := &Preprocess{Layout: "NCHW", Channels: "RGB", Size: [2]int{size, size}, ResizeSize: size * 8 / 7, Resize: "bilinear", Crop: "center", Scale: 1.0 / 255}
	norm := augment.ImageNetNorm
	if cifar {
		norm, p.Crop, p.ResizeSize = augment.CIFAR10Norm, "none", 0
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
