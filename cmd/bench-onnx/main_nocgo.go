//go:build !cgo

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "bench-onnx: built without cgo; ONNX Runtime needs cgo (set CGO_ENABLED=1 and install a C compiler)")
	os.Exit(1)
}
