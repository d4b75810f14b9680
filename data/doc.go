// Package data loads image datasets and feeds them to training: IDX files
// (MNIST, Fashion-MNIST), the CIFAR-10/100 binary format and ImageFolder
// trees (one class per subfolder; PNG, JPEG, GIF, BMP, TIFF, WebP), plus a
// Loader that shuffles with deterministic seeds, augments every sample into
// one or more views on a pool of goroutines, and batches them into NCHW
// float32 tensors ahead of the trainer.
//
// Images are float32 CHW in [0,1] (augment.Image) from the moment they are
// decoded; augmentations live in the augment subpackage.
//
// Every reader reports corrupt or short input with an error that names the
// file and the byte offset where it went wrong.
package data

import "github.com/sslzoo/sslzoo/data/augment"

// Dataset is an indexed collection of labelled images. Get must be safe for
// concurrent use: the Loader calls it from several goroutines.
type Dataset interface {
	Len() int
	// Get returns sample i as a fresh image the caller may modify, and its
	// label (-1 when the dataset has none).
	Get(i int) (*augment.Image, int, error)
}
