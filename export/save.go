package export

import (
	"fmt"
	"io"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/sslzoo/sslzoo/export/onnxpb"
	"github.com/sslzoo/sslzoo/internal/atomicfile"
)

// DefaultExternalThreshold is the initializer size above which Save moves
// tensor bytes to an external data file: a protobuf message cannot exceed
// 2 GiB.
const DefaultExternalThreshold int64 = 2 << 30

// SaveOptions control how a model is written.
type SaveOptions struct {
	// ExternalDataThreshold: when the initializers hold more bytes than
	// this, they go to "<model file>.data" beside the model. 0 means
	// DefaultExternalThreshold; negative means never.
	ExternalDataThreshold int64
	// MinExternalBytes keeps tensors smaller than this inline even in
	// external mode (default 1024, as the ONNX tools do).
	MinExternalBytes int
}

// externalAlign aligns each external tensor so that readers can map it.
const externalAlign = 64

// Export traces spec and saves the model at path.
func Export(spec Spec, path string, opts SaveOptions) error {
	m, err := Trace(spec)
	if err != nil {
		return err
	}
	return Save(m, path, opts)
}

// Save writes m to path atomically (temporary file, then rename), moving
// large initializers to external data when the threshold is exceeded. m is
// not modified.
func Save(m *onnxpb.ModelProto, path string, opts SaveOptions) error {
	threshold := opts.ExternalDataThreshold
	if threshold == 0 {
		threshold = DefaultExternalThreshold
	}
	minBytes := opts.MinExternalBytes
	if minBytes == 0 {
		minBytes = 1024
	}
	var total int64
	for _, t := range m.GetGraph().GetInitializer() {
		total += int64(len(t.GetRawData()))
	}
	out := m
	if threshold > 0 && total > threshold {
		var err error
		if out, err = externalize(m, path, minBytes); err != nil {
			return err
		}
	}
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(out)
	if err != nil {
		return fmt.Errorf("export: encode %s: %w", path, err)
	}
	return writeAtomic(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// externalize writes the big initializers' bytes to "<path>.data" and
// returns a copy of m that points at them.
func externalize(m *onnxpb.ModelProto, path string, minBytes int) (*onnxpb.ModelProto, error) {
	location := filepath.Base(path) + ".data"
	g := m.GetGraph()
	// Copy the model without the initializers' bytes, then rebuild them.
	inits := g.Initializer
	g.Initializer = nil
	out := proto.Clone(m).(*onnxpb.ModelProto)
	g.Initializer = inits
	var offset int64
	err := writeAtomic(filepath.Join(filepath.Dir(path), location), func(w io.Writer) error {
		pad := make([]byte, externalAlign)
		for _, t := range inits {
			raw := t.GetRawData()
			if len(raw) < minBytes {
				out.Graph.Initializer = append(out.Graph.Initializer, t)
				continue
			}
			if r := offset % externalAlign; r != 0 {
				if _, err := w.Write(pad[:externalAlign-r]); err != nil {
					return err
				}
				offset += externalAlign - r
			}
			if _, err := w.Write(raw); err != nil {
				return err
			}
			t.RawData = nil
			ext := proto.Clone(t).(*onnxpb.TensorProto)
			t.RawData = raw
			ext.DataLocation = onnxpb.TensorProto_EXTERNAL.Enum()
			ext.ExternalData = []*onnxpb.StringStringEntryProto{
				{Key: proto.String("location"), Value: proto.String(location)},
				{Key: proto.String("offset"), Value: proto.String(strconv.FormatInt(offset, 10))},
				{Key: proto.String("length"), Value: proto.String(strconv.Itoa(len(raw)))},
			}
			out.Graph.Initializer = append(out.Graph.Initializer, ext)
			offset += int64(len(raw))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// writeAtomic writes a file through a temporary in the same folder and
// renames it into place, so a failure never leaves a partial file.
func writeAtomic(path string, fill func(io.Writer) error) error {
	if err := atomicfile.Write(path, fill); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// Load reads an ONNX model and pulls any external initializer data into
// memory (see onnxpb.ReadFile).
func Load(path string) (*onnxpb.ModelProto, error) { return onnxpb.ReadFile(path) }
