//go:build cgo

package onnxrt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/sslzoo/sslzoo/internal/oneline"
)

// env is the process-wide ONNX Runtime environment: onnxruntime_go keeps one
// global environment, so it is set up once and never torn down.
var env struct {
	sync.Mutex
	path string
	err  error
	done bool
}

// Init loads the ONNX Runtime library (see FindLibrary) and sets up its
// environment. It is called by Open; call it directly to check availability.
// A failed load is retried on the next call (e.g. after installing).
func Init() error {
	env.Lock()
	defer env.Unlock()
	if env.done {
		return nil
	}
	path, err := FindLibrary()
	if err != nil {
		return err
	}
	ort.SetSharedLibraryPath(path)
	if err := ort.InitializeEnvironment(ort.WithLogLevelFatal()); err != nil {
		msg := strings.Join(strings.Fields(err.Error()), " ")
		return fmt.Errorf("load ONNX Runtime from %s: %s (sslzoo needs ONNX Runtime >= 1.24; install %s with %s)", path, msg, ORTVersion, InstallHint)
	}
	env.path, env.done = path, true
	return nil
}

// Available reports whether ONNX Runtime can be loaded: nil when it can,
// else the one-line reason.
func Available() error { return Init() }

// LibraryPath is the path of the loaded ONNX Runtime library ("" before Init).
func LibraryPath() string {
	env.Lock()
	defer env.Unlock()
	return env.path
}

// Version is the loaded ONNX Runtime's version string ("" before Init).
func Version() string {
	if !ort.IsInitialized() {
		return ""
	}
	return ort.GetVersion()
}

// Session is a loaded model, ready to run. It is safe for concurrent use.
type Session struct {
	name string
	info *ModelInfo
	opts Options
	s    *ort.DynamicAdvancedSession
}

// Open loads an ONNX model file. External data files are resolved relative
// to the model's folder.
func Open(path string, opts Options) (*Session, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("open model: %w", err)
	}
	return newSession(path, data, path, opts)
}

// OpenBytes loads an ONNX model held in memory (without external data).
func OpenBytes(name string, data []byte, opts Options) (*Session, error) {
	return newSession(name, data, "", opts)
}

func newSession(name string, data []byte, path string, opts Options) (*Session, error) {
	m, err := decodeModel(data)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	// A model held in memory has its external data resolved from the
	// working directory, which checkExternalData takes for path "".
	if err := checkExternalData(m, path); err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	info := modelInfo(m)
	// onnxruntime_go indexes the first input and output unconditionally.
	if len(info.Inputs) == 0 {
		return nil, fmt.Errorf("model %s has no inputs; sslzoo's runtime needs at least one", name)
	}
	if len(info.Outputs) == 0 {
		return nil, fmt.Errorf("model %s has no outputs", name)
	}
	if err := Init(); err != nil {
		return nil, err
	}
	so, err := sessionOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	defer so.Destroy()
	in := make([]string, len(info.Inputs))
	for i, v := range info.Inputs {
		in[i] = v.Name
	}
	out := make([]string, len(info.Outputs))
	for i, v := range info.Outputs {
		out[i] = v.Name
	}
	var s *ort.DynamicAdvancedSession
	if path != "" {
		s, err = ort.NewDynamicAdvancedSession(path, in, out, so)
	} else {
		s, err = ort.NewDynamicAdvancedSessionWithONNXData(data, in, out, so)
	}
	if err != nil {
		return nil, fmt.Errorf("model %s: ONNX Runtime rejected it: %s", name, oneLine(err))
	}
	return &Session{name: name, info: info, opts: opts, s: s}, nil
}

// oneLine flattens ORT's multi-line messages and drops onnxruntime_go's
// wrapper prefixes, which say nothing to a user.
func oneLine(err error) string {
	s := oneline.Flatten(err.Error())
	for _, p := range []string{"Error creating C session from file: ", "Error creating C session: ", "Error running network: "} {
		s = strings.ReplaceAll(s, p, "")
	}
	return s
}

func sessionOptions(o Options) (*ort.SessionOptions, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	fail := func(what string, err error) (*ort.SessionOptions, error) {
		so.Destroy()
		return nil, fmt.Errorf("%s: %s", what, oneLine(err))
	}
	if o.IntraOpThreads < 0 {
		so.Destroy()
		return nil, fmt.Errorf("intra-op threads %d: want >= 0 (0 = ONNX Runtime's default)", o.IntraOpThreads)
	}
	if o.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(o.IntraOpThreads); err != nil {
			return fail("set intra-op threads", err)
		}
	}
	if o.NoSpin {
		if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
			return fail("turn off thread spinning", err)
		}
	}
	lvl := map[OptLevel]ort.GraphOptimizationLevel{
		OptDisable: ort.GraphOptimizationLevelDisableAll, OptBasic: ort.GraphOptimizationLevelEnableBasic,
		OptExtended: ort.GraphOptimizationLevelEnableExtended, OptAll: ort.GraphOptimizationLevelEnableAll,
	}
	l, ok := lvl[o.Optimization]
	if !ok {
		so.Destroy()
		return nil, fmt.Errorf("graph optimisation level %d is not one of disable, basic, extended, all", o.Optimization)
	}
	if err := so.SetGraphOptimizationLevel(l); err != nil {
		return fail("set graph optimisation level", err)
	}
	if o.Device.CUDA {
		if err := appendCUDA(so, o.Device); err != nil {
			so.Destroy()
			return nil, err
		}
	}
	return so, nil
}

// appendCUDA adds the CUDA execution provider, first checking for the
// provider libraries so that a CPU-only ORT gets a precise message rather
// than a dlopen failure.
func appendCUDA(so *ort.SessionOptions, d Device) error {
	dir := filepath.Dir(LibraryPath())
	for _, f := range cudaProviderFiles {
		if p := filepath.Join(dir, f); !isFile(p) {
			return fmt.Errorf("device %v: %s is missing (the ONNX Runtime at %s has no CUDA provider); %s", d, p, LibraryPath(), cudaHint)
		}
	}
	co, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return fmt.Errorf("device %v: %s", d, oneLine(err))
	}
	defer co.Destroy()
	if err := co.Update(map[string]string{"device_id": fmt.Sprint(d.ID)}); err != nil {
		return fmt.Errorf("device %v: %s", d, oneLine(err))
	}
	if err := so.AppendExecutionProviderCUDA(co); err != nil {
		return fmt.Errorf("device %v: CUDA execution provider failed to load: %s (needs an NVIDIA driver, CUDA 12 and cuDNN 9 libraries on the loader path; %s)", d, oneLine(err), cudaHint)
	}
	return nil
}

// Name is the model's file name (or the name given to OpenBytes).
func (s *Session) Name() string { return s.name }

// Inputs lists the model's inputs in the order Run expects them.
func (s *Session) Inputs() []ValueInfo { return s.info.Inputs }

// Outputs lists the model's outputs in the order Run returns them.
func (s *Session) Outputs() []ValueInfo { return s.info.Outputs }

// Metadata is the model's metadata_props.
func (s *Session) Metadata() map[string]string { return s.info.Metadata }

// Options are the options the session was opened with.
func (s *Session) Options() Options { return s.opts }

// Close frees the session. It must not be running.
func (s *Session) Close() error {
	if s.s == nil {
		return nil
	}
	err := s.s.Destroy()
	s.s = nil
	return err
}

// ErrClosed is returned by Run on a closed session.
var ErrClosed = errors.New("session is closed")

// RunNamed is Run with inputs and outputs keyed by name.
func (s *Session) RunNamed(inputs map[string]*Tensor) (map[string]*Tensor, error) {
	in := make([]*Tensor, len(s.info.Inputs))
	for i, v := range s.info.Inputs {
		t, ok := inputs[v.Name]
		if !ok {
			return nil, fmt.Errorf("model %s: input %q not given", s.name, v.Name)
		}
		in[i] = t
	}
	for n := range inputs {
		if !slices.ContainsFunc(s.info.Inputs, func(v ValueInfo) bool { return v.Name == n }) {
			return nil, fmt.Errorf("model %s has no input %q (inputs: %v)", s.name, n, s.info.Inputs)
		}
	}
	out, err := s.Run(in...)
	if err != nil {
		return nil, err
	}
	m := make(map[string]*Tensor, len(out))
	for i, v := range s.info.Outputs {
		m[v.Name] = out[i]
	}
	return m, nil
}

// Run feeds one tensor per model input (in Inputs order) and returns every
// output (in Outputs order). Input data is read in place, not copied.
func (s *Session) Run(inputs ...*Tensor) ([]*Tensor, error) {
	if s.s == nil {
		return nil, fmt.Errorf("model %s: %w", s.name, ErrClosed)
	}
	if len(inputs) != len(s.info.Inputs) {
		return nil, fmt.Errorf("model %s takes %d inputs (%v), got %d", s.name, len(s.info.Inputs), s.info.Inputs, len(inputs))
	}
	var owned []ort.Value
	defer func() {
		for _, v := range owned {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	in := make([]ort.Value, len(inputs))
	for i, t := range inputs {
		vi := s.info.Inputs[i]
		if err := checkInput(vi, t); err != nil {
			return nil, fmt.Errorf("model %s: input %s: %w", s.name, vi.Name, err)
		}
		v, err := toORT(t)
		if err != nil {
			return nil, fmt.Errorf("model %s: input %s: %w", s.name, vi.Name, err)
		}
		owned = append(owned, v)
		in[i] = v
	}
	out := make([]ort.Value, len(s.info.Outputs))
	for i, vi := range s.info.Outputs {
		v, err := preallocate(vi)
		if err != nil {
			return nil, fmt.Errorf("model %s: output %s: %w", s.name, vi.Name, err)
		}
		out[i] = v
	}
	runErr := s.s.Run(in, out)
	// Auto-allocated outputs are ours to free too, even after a failure.
	owned = append(owned, out...)
	if runErr != nil {
		return nil, fmt.Errorf("model %s: %s", s.name, oneLine(runErr))
	}
	res := make([]*Tensor, len(out))
	for i, v := range out {
		t, err := fromORT(v)
		if err != nil {
			return nil, fmt.Errorf("model %s: output %s: %w", s.name, s.info.Outputs[i].Name, err)
		}
		res[i] = t
	}
	return res, nil
}

func ortShape(s []int) ort.Shape {
	out := make(ort.Shape, len(s))
	for i, d := range s {
		out[i] = int64(d)
	}
	return out
}

// toORT wraps a tensor's Go memory as an ORT value (no copy, except for
// strings, which ORT stores itself).
func toORT(t *Tensor) (ort.Value, error) {
	if len(t.Shape) == 0 {
		return scalarToORT(t)
	}
	sh := ortShape(t.Shape)
	switch d := t.Data.(type) {
	case []float32:
		return ort.NewTensor(sh, d)
	case []float64:
		return ort.NewTensor(sh, d)
	case []int8:
		return ort.NewTensor(sh, d)
	case []uint8:
		return ort.NewTensor(sh, d)
	case []int16:
		return ort.NewTensor(sh, d)
	case []uint16:
		if t.DType == Float16 || t.DType == BFloat16 {
			if len(d) == 0 {
				return nil, fmt.Errorf("empty %v tensors are not supported", t.DType)
			}
			b := unsafe.Slice((*byte)(unsafe.Pointer(&d[0])), 2*len(d))
			return ort.NewCustomDataTensor(sh, b, ort.TensorElementDataType(t.DType))
		}
		return ort.NewTensor(sh, d)
	case []int32:
		return ort.NewTensor(sh, d)
	case []uint32:
		return ort.NewTensor(sh, d)
	case []int64:
		return ort.NewTensor(sh, d)
	case []uint64:
		return ort.NewTensor(sh, d)
	case []bool:
		return ort.NewTensor(sh, d)
	case []string:
		st, err := ort.NewStringTensor(sh)
		if err != nil {
			return nil, err
		}
		if err := st.SetContents(d); err != nil {
			st.Destroy()
			return nil, err
		}
		return st, nil
	}
	return nil, fmt.Errorf("unsupported data type %T", t.Data)
}

func scalarToORT(t *Tensor) (ort.Value, error) {
	switch d := t.Data.(type) {
	case []float32:
		return ort.NewScalar(d[0])
	case []float64:
		return ort.NewScalar(d[0])
	case []int8:
		return ort.NewScalar(d[0])
	case []uint8:
		return ort.NewScalar(d[0])
	case []int16:
		return ort.NewScalar(d[0])
	case []uint16:
		if t.DType == Uint16 {
			return ort.NewScalar(d[0])
		}
	case []int32:
		return ort.NewScalar(d[0])
	case []uint32:
		return ort.NewScalar(d[0])
	case []int64:
		return ort.NewScalar(d[0])
	case []uint64:
		return ort.NewScalar(d[0])
	case []bool:
		return ort.NewScalar(d[0])
	}
	return nil, fmt.Errorf("scalar %v inputs are not supported", t.DType)
}

// preallocate returns an output buffer where onnxruntime_go cannot allocate
// one itself (scalars, and half-precision types whose byte size it
// miscounts), or nil to let ORT allocate.
func preallocate(vi ValueInfo) (ort.Value, error) {
	if vi.Kind != "tensor" {
		return nil, fmt.Errorf("has type %s; only tensor outputs are supported", vi.Kind)
	}
	half := vi.DType == Float16 || vi.DType == BFloat16
	if vi.Shape != nil && len(vi.Shape) == 0 {
		switch vi.DType {
		case Float32:
			return ort.NewEmptyScalar[float32]()
		case Float64:
			return ort.NewEmptyScalar[float64]()
		case Int8:
			return ort.NewEmptyScalar[int8]()
		case Uint8:
			return ort.NewEmptyScalar[uint8]()
		case Int16:
			return ort.NewEmptyScalar[int16]()
		case Uint16:
			return ort.NewEmptyScalar[uint16]()
		case Int32:
			return ort.NewEmptyScalar[int32]()
		case Uint32:
			return ort.NewEmptyScalar[uint32]()
		case Int64:
			return ort.NewEmptyScalar[int64]()
		case Uint64:
			return ort.NewEmptyScalar[uint64]()
		case Bool:
			return ort.NewEmptyScalar[bool]()
		}
		return nil, fmt.Errorf("scalar %v outputs are not supported", vi.DType)
	}
	if !half {
		return nil, nil
	}
	if !vi.Static() {
		return nil, fmt.Errorf("%v output with a dynamic shape (%v) is not supported: onnxruntime_go cannot size it", vi.DType, vi)
	}
	n := numel(vi.Shape)
	if n == 0 {
		return nil, fmt.Errorf("empty %v outputs are not supported", vi.DType)
	}
	return ort.NewCustomDataTensor(ortShape(vi.Shape), make([]byte, 2*n), ort.TensorElementDataType(vi.DType))
}

func shapeOf(s ort.Shape) []int {
	out := make([]int, len(s))
	for i, d := range s {
		out[i] = int(d)
	}
	return out
}

// fromORT copies an ORT value into a Tensor (onnxruntime_go already copied
// the data into Go memory, so this only re-types it).
func fromORT(v ort.Value) (*Tensor, error) {
	sh := shapeOf(v.GetShape())
	switch t := v.(type) {
	case *ort.Tensor[float32]:
		return NewTensor(sh, t.GetData()), nil
	case *ort.Tensor[float64]:
		return NewTensor(sh, t.GetData()), nil
	case *ort.Tensor[int8]:
		return NewTensor(sh, t.GetData()), nil
	case *ort.Tensor[uint8]:
		return NewTensor(sh, t.GetData()), nil
	case *ort.Tensor[int16]:
		return NewTensor(sh, t.GetData()), nil
	case *ort.Tensor[uint16]:
		return NewTensor(sh, t.GetData()), nil
	case *ort.Tensor[int32]:
		return NewTensor(sh, t.GetData()), nil
	case *ort.Tensor[uint32]:
		return NewTensor(sh, t.GetData()), nil
	case *ort.Tensor[int64]:
		return NewTensor(sh, t.GetData()), nil
	case *ort.Tensor[uint64]:
		return NewTensor(sh, t.GetData()), nil
	case *ort.Tensor[bool]:
		return NewTensor(sh, t.GetData()), nil
	case *ort.Scalar[float32]:
		return NewTensor(nil, []float32{t.GetData()}), nil
	case *ort.Scalar[float64]:
		return NewTensor(nil, []float64{t.GetData()}), nil
	case *ort.Scalar[int8]:
		return NewTensor(nil, []int8{t.GetData()}), nil
	case *ort.Scalar[uint8]:
		return NewTensor(nil, []uint8{t.GetData()}), nil
	case *ort.Scalar[int16]:
		return NewTensor(nil, []int16{t.GetData()}), nil
	case *ort.Scalar[uint16]:
		return NewTensor(nil, []uint16{t.GetData()}), nil
	case *ort.Scalar[int32]:
		return NewTensor(nil, []int32{t.GetData()}), nil
	case *ort.Scalar[uint32]:
		return NewTensor(nil, []uint32{t.GetData()}), nil
	case *ort.Scalar[int64]:
		return NewTensor(nil, []int64{t.GetData()}), nil
	case *ort.Scalar[uint64]:
		return NewTensor(nil, []uint64{t.GetData()}), nil
	case *ort.Scalar[bool]:
		return NewTensor(nil, []bool{t.GetData()}), nil
	case *ort.StringTensor:
		c, err := t.GetContents()
		if err != nil {
			return nil, err
		}
		return NewTensor(sh, c), nil
	case *ort.CustomDataTensor:
		dt := DType(ort.TensorElementDataType(t.DataType()))
		if dt != Float16 && dt != BFloat16 {
			return nil, fmt.Errorf("unsupported output element type %v", dt)
		}
		b := t.GetData()
		h := make([]uint16, len(b)/2)
		for i := range h {
			h[i] = binary.LittleEndian.Uint16(b[2*i:])
		}
		return &Tensor{DType: dt, Shape: sh, Data: h}, nil
	}
	return nil, fmt.Errorf("unsupported output value %T (%v)", v, v.GetONNXType())
}
