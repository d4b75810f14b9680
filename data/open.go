package data

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// OpenOptions configure Open.
type OpenOptions struct {
	Train         bool         // train split (else test)
	OnDecodeError DecodePolicy // folder datasets only
	Warn          func(error)  // folder datasets only; nil logs
}

// DatasetSpecs documents the names Open accepts.
const DatasetSpecs = "fashion-mnist, mnist, emoji, cifar10:DIR, cifar100:DIR, cifar100-coarse:DIR, folder:DIR"

// Open resolves a dataset name as the CLI's --data flag takes it:
//
//	fashion-mnist         Debian's dataset-fashion-mnist (or $SSLZOO_FASHION_MNIST_DIR)
//	mnist                 the GoMNIST module's files (or $SSLZOO_MNIST_DIR)
//	emoji                 npm emoji-datasource-google's 64-px colour emoji, 9 categories,
//	                      fetched into the cache with npm on first use (emoji:DIR: a copy);
//	                      a fixed 85/15 split (EmojiInTest)
//	cifar10:DIR           CIFAR-10 binary batches in DIR (or DIR/cifar-10-batches-bin)
//	cifar100:DIR          CIFAR-100 binary, fine labels; cifar100-coarse:DIR for the 20 coarse ones
//	folder:DIR            an ImageFolder; DIR/train and DIR/test (or DIR/val) when
//	                      they exist pick the split, otherwise DIR is used for both
func Open(ctx context.Context, spec string, opts OpenOptions) (Dataset, error) {
	name, dir, _ := strings.Cut(spec, ":")
	needDir := func() error {
		if dir == "" {
			return fmt.Errorf("dataset %q needs a folder: %s:DIR", spec, name)
		}
		return nil
	}
	switch name {
	case "fashion-mnist":
		return LoadFashionMNIST(dir, opts.Train)
	case "mnist":
		return LoadMNIST(ctx, dir, opts.Train)
	case "emoji":
		return OpenEmoji(ctx, dir, opts.Train)
	case "cifar10", "cifar100", "cifar100-coarse":
		if err := needDir(); err != nil {
			return nil, err
		}
		files, err := CIFARFiles(dir, name != "cifar10", opts.Train)
		if err != nil {
			return nil, err
		}
		if name == "cifar10" {
			return LoadCIFAR10(files...)
		}
		return LoadCIFAR100(name == "cifar100-coarse", files...)
	case "folder":
		if err := needDir(); err != nil {
			return nil, err
		}
		subs := []string{"test", "val"}
		if opts.Train {
			subs = []string{"train"}
		}
		root := dir
		for _, s := range subs {
			if st, err := os.Stat(filepath.Join(dir, s)); err == nil && st.IsDir() {
				root = filepath.Join(dir, s)
				break
			}
		}
		return OpenImageFolder(root, FolderOptions{OnDecodeError: opts.OnDecodeError, Warn: opts.Warn})
	}
	return nil, fmt.Errorf("unknown dataset %q: want one of %s", spec, DatasetSpecs)
}

// Classes returns the class names of the datasets this package makes, or
// nil when the dataset has none.
func Classes(ds Dataset) []string {
	switch d := ds.(type) {
	case *Images:
		return d.Classes
	case *ImageFolder:
		return d.Classes
	}
	return nil
}
