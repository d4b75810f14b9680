//go:build !unix

package preprocess

import "os"

func openFile(path string) (imageFile, error) { return os.Open(path) }
