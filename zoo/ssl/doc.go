// Package ssl holds sslzoo's self-supervised objectives and the training
// methods built on them: SimCLR, MoCo v2, MoCo v3, BYOL and SwAV.
//
// Every loss is a composition of autograd ops, so its gradient comes from
// the tape and it needs no backward code of its own; the golden fixtures in
// testdata/, written by scripts/gen_ssl_golden.py with PyTorch, pin each
// loss value, its gradient with respect to the embeddings, and SwAV's
// Sinkhorn assignments.
//
// A method wraps a backbone (zoo.ResNet, zoo.ViT or any Encoder) with its
// heads, target network, queue and optimizer, configured by default with the
// published recipe. Step runs one training iteration on a list of views.
// Methods are nn.Modules whose state names the online encoder "backbone.",
// so an evaluation or export loads the encoder from a method checkpoint by
// that prefix.
package ssl
