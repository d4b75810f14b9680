// Package ssl holds sslzoo's self-supervised objectives, the training
// methods built on them (SimCLR, MoCo v2, MoCo v3, BYOL, SwAV, MAE, Barlow
// Twins, VICReg, SimSiam, DINO, Jigsaw, Colorization and DeepCluster) and
// Train, the training loop as a library.
//
// Every loss is a composition of autograd ops, so its gradient comes from
// the tape and it needs no backward code of its own; the golden fixtures in
// testdata/, written by scripts/gen_ssl_golden.py with PyTorch, pin each
// loss value, its gradient with respect to the embeddings, and SwAV's
// Sinkhorn assignments.
//
// A method wraps a backbone (zoo.ResNet, zoo.ViT or any Encoder) with its
// heads, target network, queue and optimizer, configured by default with the
// published recipe; New is the one registry of them, by name, with the
// CIFAR recipe and a learning rate or queue length on request. Step runs
// one training iteration on a list of views. Methods are nn.Modules whose
// state names the online encoder "backbone.", so an evaluation or export
// loads the encoder from a method checkpoint by that prefix.
//
// Train runs a method over a dataset with the method's augmentations:
// checkpoints that resume exactly, a metrics file, an online kNN monitor,
// interruption by signal or context, and final backbone weights whose
// metadata (TrainSpec, zoo.ArchConfigKey, the preprocessing) lets
// LoadEncoder, export and other stacks rebuild the model from the file.
package ssl
