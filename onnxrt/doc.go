// Package onnxrt serves ONNX models: it runs them through ONNX Runtime
// (github.com/yalue/onnxruntime_go, cgo) and finds the ONNX Runtime shared
// library on its own.
//
// The library is looked up, in order, at $ONNXRUNTIME_SHARED_LIBRARY_PATH, in
// the sslzoo cache (where scripts/install-onnxruntime.sh puts version 1.30.0)
// and in the system library folders. ORT 1.24 or newer is required by the
// onnxruntime_go version in use.
//
// Tensors cross the API as onnxrt.Tensor values (shape, element type and a Go
// slice), so callers never touch cgo-owned memory. A Session is safe for
// concurrent use.
package onnxrt
