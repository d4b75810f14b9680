// Package conformance proves that sslzoo's exports compute what the Go
// models compute.
//
// The per-model suite (RunModel) exports every backbone of the zoo
// registry, checks the file with onnx.checker (Debian's python3-onnx), and
// runs it at batch 1 and 7 in ONNX Runtime from Go, in sslzoo's own Go
// engine through the ONNX importer, and in onnxruntime-node (JavaScript),
// each against the model's own Go forward: the largest absolute difference
// and the smallest row cosine similarity of every output are reported.
//
// The per-op suite (RunOps) exports every engine op alone and runs it in
// both engines on random inputs of several shapes, element-wise within
// 1e-4 absolute + 1e-5 relative of the Go kernel.
//
// Engines that are not installed are skipped with the reason in the result;
// `sslzoo conformance` prints the results as a table or JSON.
package conformance
