package sslzoo

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/sslzoo/sslzoo/data/text"

	"github.com/sslzoo/sslzoo/export"
	"github.com/sslzoo/sslzoo/export/onnxpb"
	"github.com/sslzoo/sslzoo/zoo"
	"github.com/sslzoo/sslzoo/zoo/load"
)

// ExportOptions adjust an export to ONNX.
type ExportOptions struct {
	// Arch names the architecture of a plain state_dict (weights files
	// written by sslzoo record theirs), or, with no weights, the
	// architecture to initialise randomly from Seed.
	Arch string
	// Prefix (with PrefixSet) takes the backbone from under a key prefix.
	Prefix    string
	PrefixSet bool
	Seed      uint64
	// ImageSize overrides a ResNet's input size; Seq a BERT's length.
	ImageSize, Seq int
	// Pool is a ViT's or BERT's pooling: "cls", "mean" or "" (its own).
	Pool string
	// RawPixels makes the graph take uint8 [batch, H, W, C] pixels.
	RawPixels bool
	// Version is the sslzoo version recorded in the file.
	Version string
	// Entry, when the weights are a zoo entry's, adds its name and
	// version to the metadata.
	Entry *zoo.Entry
}

// ExportWeights writes the ONNX graph of the backbone a weights file holds
// (weights "" exports a random initialisation of opts.Arch), atomically.
func ExportWeights(weights, out string, opts ExportOptions) error {
	m, err := exportModel(weights, opts)
	if err != nil {
		return err
	}
	return export.Save(m, out, export.SaveOptions{})
}

// exportModel traces the ONNX graph ExportWeights writes.
func exportModel(weights string, opts ExportOptions) (*onnxpb.ModelProto, error) {
	meta := export.Metadata{Version: opts.Version}
	var (
		m    zoo.Backbone
		name = opts.Arch
		tok  *text.Tokenizer
	)
	if weights != "" {
		lb, err := load.File(weights, load.Options{Arch: opts.Arch, Prefix: opts.Prefix, PrefixSet: opts.PrefixSet, Seed: opts.Seed})
		if err != nil {
			return nil, err
		}
		m, name, tok = lb.Model, lb.Spec.Name, lb.Tokenizer
		meta.WeightsSHA256, meta.Method, meta.Preprocess = lb.SHA256, lb.Method, lb.Preprocess
		if opts.ImageSize == 0 {
			opts.ImageSize = lb.ImageSize
		}
	} else {
		spec, err := zoo.Arch(opts.Arch)
		if err != nil {
			return nil, err
		}
		if m, err = spec.Build(rand.New(rand.NewPCG(opts.Seed, 0x6578706f7274))); err != nil {
			return nil, err
		}
	}
	if e := opts.Entry; e != nil {
		meta = meta.WithExtra("sslzoo.name", e.Name).WithExtra("sslzoo.entry_version", e.Version)
		// The manifest is the source of truth (what `info` prints); a
		// trained file records only how its training read the images.
		if e.Preprocess != nil {
			meta.Preprocess = e.Preprocess
		}
		if meta.Method == "" {
			meta.Method = e.Method
		}
	}
	b, err := export.NewBackbone(name, m, export.BackboneOptions{ImageSize: opts.ImageSize, Seq: opts.Seq, Pool: opts.Pool, Metadata: meta, Tokenizer: tok})
	if err != nil {
		return nil, err
	}
	spec := b.Spec
	if opts.RawPixels {
		if b.Text || b.Preprocess == nil {
			return nil, fmt.Errorf("raw pixels apply to image models with recorded preprocessing; %s is not one", name)
		}
		if spec, err = export.RawPixels(spec, *b.Preprocess); err != nil {
			return nil, err
		}
	}
	return export.Trace(spec)
}

// Export pulls a zoo entry and writes its ONNX graph to out.
func Export(ctx context.Context, name, out string, eo ExportOptions, opts *Options) error {
	e, err := zoo.Lookup(name)
	if err != nil {
		return err
	}
	weights, err := Pull(ctx, name, opts)
	if err != nil {
		return err
	}
	eo.Entry, eo.Arch = &e, ""
	return ExportWeights(weights, out, eo)
}
