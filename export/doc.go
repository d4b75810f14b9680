// Package export writes sslzoo models as ONNX files.
//
// Export is by tracing: the model's ordinary eval-mode forward runs on an
// autograd.Tape, and every recorded op becomes one or more ONNX nodes, so the
// graph is derived from the very code that trains and serves the model. The
// forward runs twice, at two batch sizes; comparing the two records tells
// which dimensions follow the batch (they become the symbolic axis "batch")
// and catches graphs that would silently bake in a batch size.
//
// Files target ONNX opset 17 and IR version 8. Parameters and buffers become
// initializers under their PyTorch state_dict names, and above a size
// threshold (2 GB by default) their bytes move to an external data file.
//
// NewBackbone makes a zoo backbone (ResNet, ViT, BERT) ready for export:
// its inputs ("pixel_values", or "input_ids" and "attention_mask"), its
// "embedding" output pooled as asked (PoolCLS, PoolMean) and the metadata
// another stack needs to prepare inputs from the file alone. The MAE
// reconstruction graph lives in export/maegraph.
package export
