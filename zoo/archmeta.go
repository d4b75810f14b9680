package zoo

import (
	"encoding/json"
	"fmt"
)

// ArchConfigKey is the safetensors / ONNX metadata key holding the exact
// architecture a weights file was made for (see Spec.ConfigJSON). `train`
// and `import` write it, so `export`, `eval` and Load rebuild exactly that
// backbone: two models with the same tensor shapes can still differ (MoCo
// v3's ViT-S has 12 heads where DeiT's has 6; solo-learn pads its CIFAR
// conv1 by 2), and the shapes alone would pick the wrong one silently.
const ArchConfigKey = "sslzoo.arch_config"

// specJSON is Spec on the wire: only the family's own configuration.
type specJSON struct {
	Name   string        `json:"name"`
	Family string        `json:"family"`
	ResNet *ResNetConfig `json:"resnet,omitempty"`
	ViT    *ViTConfig    `json:"vit,omitempty"`
	BERT   *BERTConfig   `json:"bert,omitempty"`
}

// ConfigJSON renders the spec for ArchConfigKey.
func (s Spec) ConfigJSON() string {
	w := specJSON{Name: s.Name, Family: s.Family}
	switch s.Family {
	case "resnet":
		w.ResNet = &s.ResNet
	case "vit":
		w.ViT = &s.ViT
	case "bert":
		w.BERT = &s.BERT
	}
	b, _ := json.Marshal(w)
	return string(b)
}

// ParseSpec reads a spec written by ConfigJSON.
func ParseSpec(raw string) (Spec, error) {
	var w specJSON
	if err := json.Unmarshal([]byte(raw), &w); err != nil {
		return Spec{}, fmt.Errorf("zoo: %s: %w", ArchConfigKey, err)
	}
	s := Spec{Name: w.Name, Family: w.Family}
	// The configuration is checked as Build would check it, so that a file
	// cannot record an architecture nothing can build.
	var err error
	switch {
	case w.Family == "resnet" && w.ResNet != nil:
		s.ResNet = *w.ResNet
		_, err = s.ResNet.withDefaults()
	case w.Family == "vit" && w.ViT != nil:
		s.ViT = *w.ViT
		_, err = s.ViT.withDefaults()
	case w.Family == "bert" && w.BERT != nil:
		s.BERT = *w.BERT
		_, err = s.BERT.withDefaults()
	default:
		return Spec{}, fmt.Errorf("zoo: %s: family %q without its configuration", ArchConfigKey, w.Family)
	}
	if err != nil {
		return Spec{}, fmt.Errorf("zoo: %s: %w", ArchConfigKey, err)
	}
	return s, nil
}

// SpecFromMetadata returns the architecture recorded in a weights file's
// metadata, and false when the file records none.
func SpecFromMetadata(meta map[string]string) (Spec, bool, error) {
	raw, ok := meta[ArchConfigKey]
	if !ok {
		return Spec{}, false, nil
	}
	s, err := ParseSpec(raw)
	return s, err == nil, err
}
