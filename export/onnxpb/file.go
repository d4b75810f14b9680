package onnxpb

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/sslzoo/sslzoo/internal/safepath"
)

// ReadFile reads an ONNX model and pulls any external initializer data into
// memory, so the returned model is self-contained. External data locations
// must stay inside the model's folder.
func ReadFile(path string) (*ModelProto, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := &ModelProto{}
	if err := proto.Unmarshal(raw, m); err != nil {
		return nil, fmt.Errorf("%s: not an ONNX model (protobuf decode: %v)", path, err)
	}
	if m.GetGraph() == nil {
		return nil, fmt.Errorf("%s: not an ONNX model (no graph)", path)
	}
	dir := filepath.Dir(path)
	files := map[string]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, t := range m.GetGraph().GetInitializer() {
		if t.GetDataLocation() != TensorProto_EXTERNAL {
			continue
		}
		if err := loadExternal(t, dir, files); err != nil {
			return nil, fmt.Errorf("%s: initializer %q: %w", path, t.GetName(), err)
		}
	}
	return m, nil
}

func loadExternal(t *TensorProto, dir string, files map[string]*os.File) error {
	var loc string
	offset, length := int64(0), int64(-1)
	for _, kv := range t.GetExternalData() {
		var err error
		switch kv.GetKey() {
		case "location":
			loc = kv.GetValue()
		case "offset":
			offset, err = strconv.ParseInt(kv.GetValue(), 10, 64)
		case "length":
			length, err = strconv.ParseInt(kv.GetValue(), 10, 64)
		}
		if err != nil {
			return fmt.Errorf("external_data %s=%q: %w", kv.GetKey(), kv.GetValue(), err)
		}
	}
	f, ok := files[loc]
	if !ok {
		// The location is relative to the model and may not leave its
		// folder, neither by its name nor through a symlink.
		p, err := safepath.Join(dir, loc)
		if err != nil {
			return fmt.Errorf("external data location: %w", err)
		}
		if f, err = os.Open(p); err != nil {
			return err
		}
		files[loc] = f
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if length < 0 {
		length = fi.Size() - offset
	}
	if offset < 0 || length < 0 || offset+length > fi.Size() {
		return fmt.Errorf("bytes [%d, %d) are outside %s (%d bytes)", offset, offset+length, loc, fi.Size())
	}
	buf := make([]byte, length)
	if _, err := f.ReadAt(buf, offset); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	t.RawData = buf
	t.ExternalData = nil
	t.DataLocation = nil
	return nil
}
