package onnxrt

import "fmt"

// Engine is a loaded model on either backend: *Session (ONNX Runtime) or
// *GoSession (sslzoo's own engine). Both take and return the same tensors.
type Engine interface {
	Name() string
	Inputs() []ValueInfo
	Outputs() []ValueInfo
	Metadata() map[string]string
	Run(inputs ...*Tensor) ([]*Tensor, error)
	Close() error
}

var (
	_ Engine = (*Session)(nil)
	_ Engine = (*GoSession)(nil)
)

// Engine kinds for OpenEngine (the CLI's --engine).
const (
	EngineORT  = "ort"
	EngineGo   = "go"
	EngineAuto = "auto"
)

// OpenEngine loads a model on the named engine: "ort", "go", or "auto"
// (ONNX Runtime when its library loads, else the Go engine). opts apply to
// ONNX Runtime only.
func OpenEngine(path, kind string, opts Options) (Engine, error) {
	switch kind {
	case EngineORT:
		return Open(path, opts)
	case EngineGo:
		return OpenGo(path)
	case EngineAuto, "":
		if Available() == nil {
			return Open(path, opts)
		}
		return OpenGo(path)
	}
	return nil, fmt.Errorf("engine %q: want ort, go or auto", kind)
}

// checkInput compares a tensor with the declared input, so that a wrong
// shape or type gets a message naming both rather than ORT's.
func checkInput(vi ValueInfo, t *Tensor) error {
	if vi.Kind != "tensor" {
		return fmt.Errorf("has type %s; only tensor inputs are supported", vi.Kind)
	}
	if err := t.Validate(); err != nil {
		return err
	}
	if t.DType != vi.DType {
		return fmt.Errorf("model wants %v, got %v %v", vi.DType, t.DType, t.Shape)
	}
	if vi.Shape == nil {
		return nil
	}
	ok := len(vi.Shape) == len(t.Shape)
	for i := 0; ok && i < len(t.Shape); i++ {
		ok = vi.Shape[i] < 0 || vi.Shape[i] == t.Shape[i]
	}
	if !ok {
		return fmt.Errorf("shape %v does not match the model's %v", t.Shape, vi)
	}
	return nil
}
