//go:build unix

package preprocess

import (
	"io"
	"io/fs"
	"time"

	"golang.org/x/sys/unix"
)

// rawFile reads a regular file with plain system calls. os.File costs an
// epoll registration attempt and a finalizer per open, a fifth of the time
// spent reading ten thousand small images.
type rawFile struct {
	fd   int
	name string
}

func openFile(path string) (imageFile, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return &rawFile{fd: fd, name: path}, nil
	}
}

func (f *rawFile) Read(b []byte) (int, error) {
	for {
		n, err := unix.Read(f.fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, &fs.PathError{Op: "read", Path: f.name, Err: err}
		}
		if n == 0 && len(b) > 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f *rawFile) Close() error { return unix.Close(f.fd) }

func (f *rawFile) Stat() (fs.FileInfo, error) {
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: f.name, Err: err}
	}
	return statInfo{name: f.name, size: st.Size, dir: st.Mode&unix.S_IFMT == unix.S_IFDIR}, nil
}

// statInfo is the part of a FileInfo readFileInto uses.
type statInfo struct {
	name string
	size int64
	dir  bool
}

func (s statInfo) Name() string { return s.name }
func (s statInfo) Size() int64  { return s.size }
func (s statInfo) Mode() fs.FileMode {
	if s.dir {
		return fs.ModeDir
	}
	return 0
}
func (s statInfo) ModTime() time.Time { return time.Time{} }
func (s statInfo) IsDir() bool        { return s.dir }
func (s statInfo) Sys() any           { return nil }
