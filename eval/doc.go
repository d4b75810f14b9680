// Package eval measures how good a self-supervised encoder's features are,
// the way the field does: a weighted k-nearest-neighbour classifier on
// frozen features (lightly's benchmark protocol: k = 200, temperature 0.1,
// cosine similarity), a linear probe on frozen, standardised features, and
// fine-tuning the whole encoder on a small labelled fraction (1% or 10%).
// Every evaluator reports top-1 and top-5 accuracy.
//
// Features are extracted once (Extract, or Pixels for the raw-pixel
// baseline) and the frozen-feature evaluators work on those matrices, so a
// kNN and a linear probe of the same checkpoint share one forward pass.
package eval
