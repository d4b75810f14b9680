// Package triton lays out an exported ONNX model as a Triton Inference
// Server model repository: DIR/NAME/config.pbtxt beside DIR/NAME/1/model.onnx,
// for the onnxruntime backend with dynamic batching. It is the step from
// `sslzoo serve` on one machine to a Triton (or KServe with the Triton
// runtime) deployment: the same file, the same tensor names, the
// preprocessing carried along as model parameters.
//
// The config is written as protobuf text by hand, for the few ModelConfig
// fields it sets (their names and types follow Triton's model_config.proto);
// the tests parse it back against a descriptor of those fields.
package triton

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sslzoo/sslzoo/internal/atomicfile"
	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/serve/kserve"
)

// Platform is the Triton platform name of ONNX models.
const Platform = "onnxruntime_onnx"

// ModelFile is where Triton's onnxruntime backend looks for version 1.
const ModelFile = "1/model.onnx"

// Tensor is one input or output of the config: its name, Triton data type
// (TYPE_FP32, ...) and dimensions without the batch axis (-1 where the
// model leaves a dimension free).
type Tensor struct {
	Name     string
	DataType string
	Dims     []int64
}

// Config is the part of Triton's ModelConfig that sslzoo writes.
type Config struct {
	Name          string
	MaxBatchSize  int
	Inputs        []Tensor
	Outputs       []Tensor
	MaxQueueDelay time.Duration // dynamic_batching.max_queue_delay_microseconds
	Instances     int           // CPU instances (instance_group count)
	// Parameters become ModelConfig.parameters (string values).
	Parameters map[string]string
}

// Options tune the config ConfigFor derives from a model.
type Options struct {
	MaxBatchSize  int           // 0: 32
	MaxQueueDelay time.Duration // 0: run a batch as soon as an instance is free
	Instances     int           // 0: 1
}

// DefaultMaxBatchSize is the max_batch_size written when Options leave it 0.
const DefaultMaxBatchSize = 32

// ConfigFor derives the config of the model described by info, to be
// served under name. Every input and output must have a free first
// (batch) axis, as sslzoo's exports do; the model's "sslzoo.*" metadata,
// the preprocessing among them, become parameters.
func ConfigFor(name string, info *onnxrt.ModelInfo, o Options) (Config, error) {
	if err := CheckName(name); err != nil {
		return Config{}, err
	}
	if o.MaxBatchSize < 0 || o.MaxQueueDelay < 0 || o.Instances < 0 {
		return Config{}, fmt.Errorf("triton: max batch size %d, max queue delay %v and instances %d must not be negative", o.MaxBatchSize, o.MaxQueueDelay, o.Instances)
	}
	c := Config{Name: name, MaxBatchSize: o.MaxBatchSize, MaxQueueDelay: o.MaxQueueDelay, Instances: o.Instances, Parameters: map[string]string{}}
	if c.MaxBatchSize == 0 {
		c.MaxBatchSize = DefaultMaxBatchSize
	}
	if c.Instances == 0 {
		c.Instances = 1
	}
	var err error
	if c.Inputs, err = tensors("input", info.Inputs); err != nil {
		return Config{}, err
	}
	if c.Outputs, err = tensors("output", info.Outputs); err != nil {
		return Config{}, err
	}
	for k, v := range info.Metadata {
		if strings.HasPrefix(k, "sslzoo.") {
			c.Parameters[k] = v
		}
	}
	return c, nil
}

func tensors(kind string, vs []onnxrt.ValueInfo) ([]Tensor, error) {
	if len(vs) == 0 {
		return nil, fmt.Errorf("triton: the model has no %ss", kind)
	}
	out := make([]Tensor, 0, len(vs))
	for _, v := range vs {
		if v.Kind != "tensor" || v.Shape == nil {
			return nil, fmt.Errorf("triton: %s %s is not a tensor of known rank", kind, v)
		}
		if len(v.Shape) == 0 || v.Shape[0] >= 0 {
			return nil, fmt.Errorf("triton: %s %s has no free batch axis; Triton's dynamic batcher needs one (export with sslzoo export)", kind, v)
		}
		dt, ok := kserve.Datatype(v.DType)
		if !ok {
			return nil, fmt.Errorf("triton: %s %s: element type %v has no Triton type", kind, v.Name, v.DType)
		}
		if dt == "BYTES" {
			dt = "STRING" // Triton's config calls the v2 BYTES type TYPE_STRING
		}
		dims := make([]int64, len(v.Shape)-1)
		for i, d := range v.Shape[1:] {
			dims[i] = int64(max(d, -1))
		}
		out = append(out, Tensor{Name: v.Name, DataType: "TYPE_" + dt, Dims: dims})
	}
	return out, nil
}

// CheckName refuses model names Triton would not find, or that would
// leave the repository folder.
func CheckName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("triton: model name %q: want a plain folder name (no slashes, not . or ..)", name)
	}
	return nil
}

// Text renders the config as config.pbtxt.
func (c Config) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\n", quote(c.Name))
	fmt.Fprintf(&b, "platform: %s\n", quote(Platform))
	fmt.Fprintf(&b, "max_batch_size: %d\n", c.MaxBatchSize)
	writeTensors(&b, "input", c.Inputs)
	writeTensors(&b, "output", c.Outputs)
	fmt.Fprintf(&b, "dynamic_batching {\n  max_queue_delay_microseconds: %d\n}\n", c.MaxQueueDelay.Microseconds())
	fmt.Fprintf(&b, "instance_group [\n  {\n    count: %d\n    kind: KIND_CPU\n  }\n]\n", c.Instances)
	keys := make([]string, 0, len(c.Parameters))
	for k := range c.Parameters {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "parameters {\n  key: %s\n  value {\n    string_value: %s\n  }\n}\n", quote(k), quote(c.Parameters[k]))
	}
	return b.String()
}

func writeTensors(b *strings.Builder, field string, ts []Tensor) {
	fmt.Fprintf(b, "%s [\n", field)
	for i, t := range ts {
		dims := make([]string, len(t.Dims))
		for j, d := range t.Dims {
			dims[j] = strconv.FormatInt(d, 10)
		}
		sep := ","
		if i == len(ts)-1 {
			sep = ""
		}
		fmt.Fprintf(b, "  {\n    name: %s\n    data_type: %s\n    dims: [ %s ]\n  }%s\n", quote(t.Name), t.DataType, strings.Join(dims, ", "), sep)
	}
	b.WriteString("]\n")
}

// quote writes a protobuf text-format string: printable ASCII as is, the
// quote and backslash escaped, every other byte as a 3-digit octal escape
// (valid in every text-format parser, unlike Go's \u escapes).
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "\\%03o", c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// ModelDir is the model's folder in the repository root.
func ModelDir(root, name string) string { return filepath.Join(root, name) }

// WriteConfig writes ROOT/NAME/config.pbtxt atomically; the folder must
// exist (the model file goes in first, see ModelFile).
func WriteConfig(root string, c Config) error {
	if err := CheckName(c.Name); err != nil {
		return err
	}
	dir := ModelDir(root, c.Name)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("triton: model folder %s does not exist", dir)
	}
	return atomicfile.WriteBytes(filepath.Join(dir, "config.pbtxt"), []byte(c.Text()))
}
