//go:build !cgo

package onnxrt

import "errors"

// errNoCgo explains why ONNX Runtime is unavailable in this build.
var errNoCgo = errors.New("ONNX Runtime support needs cgo: this binary was built with CGO_ENABLED=0; rebuild with CGO_ENABLED=1 and a C compiler")

// ErrClosed is returned by Run on a closed session.
var ErrClosed = errors.New("session is closed")

// Init always fails in a build without cgo.
func Init() error { return errNoCgo }

// Available reports why ONNX Runtime cannot be used.
func Available() error { return errNoCgo }

// LibraryPath is "" without cgo.
func LibraryPath() string { return "" }

// Version is "" without cgo.
func Version() string { return "" }

// Session is a loaded model; without cgo none can be opened.
type Session struct {
	name string
	info *ModelInfo
	opts Options
}

// Open fails without cgo.
func Open(path string, opts Options) (*Session, error) { return nil, errNoCgo }

// OpenBytes fails without cgo.
func OpenBytes(name string, data []byte, opts Options) (*Session, error) { return nil, errNoCgo }

// Name is the model's name.
func (s *Session) Name() string { return s.name }

// Inputs lists the model's inputs.
func (s *Session) Inputs() []ValueInfo { return s.info.Inputs }

// Outputs lists the model's outputs.
func (s *Session) Outputs() []ValueInfo { return s.info.Outputs }

// Metadata is the model's metadata_props.
func (s *Session) Metadata() map[string]string { return s.info.Metadata }

// Options are the options the session was opened with.
func (s *Session) Options() Options { return s.opts }

// Close does nothing without cgo.
func (s *Session) Close() error { return nil }

// Run fails without cgo.
func (s *Session) Run(inputs ...*Tensor) ([]*Tensor, error) { return nil, errNoCgo }

// RunNamed fails without cgo.
func (s *Session) RunNamed(inputs map[string]*Tensor) (map[string]*Tensor, error) {
	return nil, errNoCgo
}
