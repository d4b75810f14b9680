package export

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/data/preprocess"
	"github.com/sslzoo/sslzoo/nn"
)

// Preprocess is the preprocessing recorded under "sslzoo.preprocess"
// (see preprocess.Spec).
type Preprocess = preprocess.Spec

// Metadata is what sslzoo writes into metadata_props.
type Metadata struct {
	Method        string // SSL method, e.g. "simclr"; "" for a bare backbone
	Backbone      string // architecture name, e.g. "resnet18-cifar"
	EmbeddingDim  int
	Version       string // sslzoo version
	WeightsSHA256 string // sha256 of the source weights file; "" for random init
	Preprocess    *Preprocess
	Extra         map[string]string // further keys, e.g. "sslzoo.tokenizer"
}

// Props renders the metadata as metadata_props entries.
func (m Metadata) Props() (map[string]string, error) {
	p := map[string]string{}
	for k, v := range m.Extra {
		p[k] = v
	}
	set := func(k, v string) {
		if v != "" {
			p[k] = v
		}
	}
	set("sslzoo.method", m.Method)
	set("sslzoo.backbone", m.Backbone)
	if m.EmbeddingDim > 0 {
		p["sslzoo.embedding_dim"] = strconv.Itoa(m.EmbeddingDim)
	}
	set("sslzoo.version", m.Version)
	set("sslzoo.weights_sha256", m.WeightsSHA256)
	if m.Preprocess != nil {
		pp := *m.Preprocess
		if pp.Layout == "" {
			pp.Layout = "NCHW"
		}
		if len(pp.Mean) != len(pp.Std) {
			return nil, fmt.Errorf("preprocess: %d means but %d stds", len(pp.Mean), len(pp.Std))
		}
		b, err := json.Marshal(pp)
		if err != nil {
			return nil, err
		}
		p["sslzoo.preprocess"] = string(b)
	}
	return p, nil
}

// ImageModel is an image backbone: one NCHW float32 input.
type ImageModel interface {
	nn.Module
	Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var
}

// ImageSpec is the Spec of an image backbone with input "pixel_values" of
// shape [batch, C, H, W] and output "embedding". The model is switched to
// eval mode.
func ImageSpec(name string, m ImageModel, channels, height, width int, meta Metadata) (Spec, error) {
	props, err := meta.Props()
	if err != nil {
		return Spec{}, fmt.Errorf("export %s: %w", name, err)
	}
	m.SetTraining(false)
	return Spec{
		Name:    name,
		Inputs:  []Input{{Name: "pixel_values", Shape: []int{1, channels, height, width}}},
		Outputs: []string{"embedding"},
		Forward: func(tp *autograd.Tape, in []*autograd.Var) []*autograd.Var {
			return []*autograd.Var{m.Forward(tp, in[0])}
		},
		Module:          m,
		Metadata:        props,
		ProducerVersion: meta.Version,
	}, nil
}
