package preprocess

import (
	"fmt"
	"io"
	"io/fs"
)

// readFileInto is ReadFile reusing buf.
func readFileInto(path string, maxBytes int64, buf []byte) ([]byte, error) {
	f, err := openFile(path)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("image %s: is a directory", path)
	}
	if maxBytes >= 0 && st.Size() > maxBytes {
		return nil, &DecodeError{Path: path, Size: st.Size(),
			Err: fmt.Errorf("%w: file is %d bytes, the limit is %d (raise DecodeOptions.MaxBytes)", ErrTooLarge, st.Size(), maxBytes)}
	}
	// Read exactly the size Stat gave, so the limit holds even if the file
	// grows meanwhile: one read call for the whole file.
	n := int(st.Size())
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil, fmt.Errorf("image: read %s: %w (did the file shrink while being read?)", path, err)
	}
	return buf, nil
}

// imageFile is what readFileInto needs of an open file.
type imageFile interface {
	io.ReadCloser
	Stat() (fs.FileInfo, error)
}
