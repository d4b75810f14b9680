// Package bundled holds the zoo's bundled weights inside the binary, so
// that pull, embed and the demo work with no network at all. Only the
// commands and APIs that can fetch models import it; the rest of sslzoo
// stays small.
package bundled

import (
	"embed"
	"io"
	"io/fs"
	"path"
)

// The files sit at files/NAME/FILE, the layout of the cache itself.
//
//go:embed files
var files embed.FS

// Open returns the bundled copy of a zoo entry's file, or an error wrapping
// fs.ErrNotExist when this build does not carry it.
func Open(name, file string) (io.ReadCloser, error) {
	if !fs.ValidPath(name) || !fs.ValidPath(file) || path.Base(name) != name || path.Base(file) != file {
		return nil, &fs.PathError{Op: "open", Path: name + "/" + file, Err: fs.ErrInvalid}
	}
	return files.Open(path.Join("files", name, file))
}

// Has reports whether this build carries name's file.
func Has(name, file string) bool {
	f, err := Open(name, file)
	if err != nil {
		return false
	}
	f.Close()
	return true
}
