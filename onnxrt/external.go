package onnxrt

import (
	"fmt"
	"path/filepath"

	"github.com/sslzoo/sslzoo/export/onnxpb"
	"github.com/sslzoo/sslzoo/internal/safepath"
)

// checkExternalData refuses a model whose external-data locations would
// lead out of its folder. ONNX Runtime opens those files itself, so the
// check has to come before the model reaches it: every tensor that can
// carry external data is visited (initializers, Constant-style attribute
// tensors, sparse initializers, and the same inside subgraphs).
func checkExternalData(m *onnxpb.ModelProto, modelPath string) error {
	dir := filepath.Dir(modelPath)
	var bad error
	visitTensors(m.GetGraph(), func(t *onnxpb.TensorProto) {
		if bad != nil || t.GetDataLocation() != onnxpb.TensorProto_EXTERNAL {
			return
		}
		for _, kv := range t.GetExternalData() {
			if kv.GetKey() != "location" {
				continue
			}
			if _, err := safepath.Join(dir, kv.GetValue()); err != nil {
				bad = fmt.Errorf("tensor %q: external data location: %w", t.GetName(), err)
				return
			}
		}
	})
	return bad
}

// visitTensors calls fn on every TensorProto of g and of its subgraphs.
func visitTensors(g *onnxpb.GraphProto, fn func(*onnxpb.TensorProto)) {
	if g == nil {
		return
	}
	for _, t := range g.GetInitializer() {
		fn(t)
	}
	for _, s := range g.GetSparseInitializer() {
		fn(s.GetValues())
		fn(s.GetIndices())
	}
	for _, n := range g.GetNode() {
		for _, a := range n.GetAttribute() {
			if a.GetT() != nil {
				fn(a.GetT())
			}
			for _, t := range a.GetTensors() {
				fn(t)
			}
			if a.GetSparseTensor() != nil {
				fn(a.GetSparseTensor().GetValues())
				fn(a.GetSparseTensor().GetIndices())
			}
			visitTensors(a.GetG(), fn)
			for _, sg := range a.GetGraphs() {
				visitTensors(sg, fn)
			}
		}
	}
}
