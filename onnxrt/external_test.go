package onnxrt

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/sslzoo/sslzoo/export/onnxpb"
	"github.com/sslzoo/sslzoo/internal/safepath"
)

// externalModel is y = x + w, with w's two floats stored in the file at
// location, as ONNX external data.
func externalModel(location string) []byte {
	return model(&onnxpb.GraphProto{
		Name: proto.String("external"),
		Node: []*onnxpb.NodeProto{node("Add", []string{"x", "w"}, []string{"y"})},
		Initializer: []*onnxpb.TensorProto{{
			Name: proto.String("w"), DataType: proto.Int32(int32(Float32)), Dims: []int64{2},
			DataLocation: onnxpb.TensorProto_EXTERNAL.Enum(),
			ExternalData: []*onnxpb.StringStringEntryProto{{Key: proto.String("location"), Value: proto.String(location)}},
		}},
		Input:  []*onnxpb.ValueInfoProto{tensorValue("x", Float32, dims(2))},
		Output: []*onnxpb.ValueInfoProto{tensorValue("y", Float32, dims(2))},
	}, nil)
}

func writeFloats(t *testing.T, path string, v ...float32) {
	t.Helper()
	var b []byte
	for _, f := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// ONNX Runtime opens external data itself; a location that leads out of
// the model's folder must be refused before the model reaches it, on
// both engines, while one inside the folder still loads.
func TestExternalDataStaysInFolder(t *testing.T) {
	needORT(t)
	root := t.TempDir()
	dir := filepath.Join(root, "model")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFloats(t, filepath.Join(root, "secret.bin"), 7, 8)
	writeFloats(t, filepath.Join(dir, "w.bin"), 1, 2)
	if err := os.Symlink(filepath.Join(root, "secret.bin"), filepath.Join(dir, "link.bin")); err != nil {
		t.Fatal(err)
	}
	open := func(engine, location string) (Engine, error) {
		path := filepath.Join(dir, "m-"+filepath.Base(location)+".onnx")
		if err := os.WriteFile(path, externalModel(location), 0o644); err != nil {
			t.Fatal(err)
		}
		return OpenEngine(path, engine, Options{})
	}
	for _, engine := range []string{EngineORT, EngineGo} {
		for _, location := range []string{"../secret.bin", "link.bin", filepath.Join(root, "secret.bin")} {
			r, err := open(engine, location)
			if err == nil {
				r.Close()
				t.Errorf("%s engine opened a model whose external data is at %q, outside its folder", engine, location)
				continue
			}
			if !errors.Is(err, safepath.ErrEscape) {
				t.Errorf("%s engine, location %q: error %v, want one saying the path leaves its folder", engine, location, err)
			}
		}
		r, err := open(engine, "w.bin")
		if err != nil {
			t.Fatalf("%s engine refused external data inside the model's folder: %v", engine, err)
		}
		out, err := r.Run(NewTensor([]int{2}, []float32{10, 20}))
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		got, err := out[0].Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if got[0] != 11 || got[1] != 22 {
			t.Errorf("%s engine: x + w = %v, want [11 22]", engine, got)
		}
	}
}
