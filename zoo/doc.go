// Package zoo holds sslzoo's backbones (ResNet, ViT, BERT encoder) and the
// registry of named architectures.
//
// Every backbone names its parameters and buffers exactly as the reference
// PyTorch implementation does (torchvision for ResNet, timm/MAE for ViT,
// Hugging Face for BERT), so their checkpoints load by name. The parity
// fixtures in testdata/, written by scripts/gen_parity.py, pin the forward
// pass, train-mode statistics and every parameter gradient to PyTorch's.
package zoo
