// Package onnxpb holds the ONNX protobuf message types (ModelProto,
// GraphProto, TensorProto, ...) generated from onnx.proto in this folder.
//
// The package is named onnxpb, and its proto package sslzoo.onnx, so that it
// can live in one binary beside other ONNX bindings without a name or
// registry clash. Field numbers are the ONNX specification's, so files read
// and written with these types are ordinary .onnx files.
package onnxpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative onnx.proto
