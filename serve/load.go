package serve

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/sslzoo/sslzoo"
)

// ParseModelSpec reads a --model value: a zoo name, an .onnx file, or
// either as NAME=TARGET to serve it under another name. The name of an
// .onnx file is its base name without the extension.
func ParseModelSpec(spec string) (name, target string, err error) {
	target = spec
	if n, t, ok := strings.Cut(spec, "="); ok {
		name, target = n, t
	}
	if target == "" {
		return "", "", fmt.Errorf("--model %q names nothing to serve: give a zoo name or an .onnx file", spec)
	}
	if name == "" {
		name = target
		if strings.HasSuffix(target, ".onnx") {
			name = strings.TrimSuffix(filepath.Base(target), ".onnx")
		}
	}
	if err := CheckName(name); err != nil {
		return "", "", fmt.Errorf("--model %q: %w (serve it as NAME=%s)", spec, err, target)
	}
	return name, target, nil
}

// LoadModel opens what a --model value names, pulling a zoo entry into
// the cache (and exporting it to ONNX) on first use.
func LoadModel(ctx context.Context, spec string, opts *sslzoo.Options) (Model, error) {
	name, target, err := ParseModelSpec(spec)
	if err != nil {
		return Model{}, err
	}
	enc, err := sslzoo.Load(ctx, target, opts)
	if err != nil {
		return Model{}, fmt.Errorf("model %s: %w", name, err)
	}
	return Model{Name: name, Encoder: enc}, nil
}
