package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Root can write anywhere chmod allows nothing, so these cases use paths
// that fail for every user: a cache root below a regular file, a root that
// is a regular file, and a root inside /proc.
func TestUnwritableCacheDir(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(blocker, []byte("not a folder"), 0o644); err != nil {
		t.Fatal(err)
	}
	readOnly := filepath.Join(t.TempDir(), "ro")
	os.Mkdir(readOnly, 0o555)
	tests := []struct {
		name string
		root string
		want []string
		skip string
	}{
		{name: "root below a regular file", root: filepath.Join(blocker, "cache"), want: []string{"is not writable", "not a directory"}},
		{name: "root is a regular file", root: blocker, want: []string{"is not writable", "not a directory"}},
		{name: "root inside /proc", root: "/proc/self/sslzoo-cache", want: []string{"is not usable"}},
		{name: "read-only folder", root: readOnly, want: []string{"is not writable", "permission denied"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root == readOnly && os.Geteuid() == 0 {
				t.Skip("root ignores the folder's mode; the other cases cover root")
			}
			if tt.root == "/proc/self/sslzoo-cache" {
				if _, err := os.Stat("/proc/self"); err != nil {
					t.Skip("no /proc here")
				}
			}
			s := goodServer(t)
			c, _ := newCache(t)
			c.Root = tt.root
			_, err := c.Pull(context.Background(), request(s.URL+"/f"))
			var de *DirError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v, want a *DirError", err)
			}
			dir := filepath.Join(tt.root, "tiny-net")
			containsAll(t, "error", err.Error(), append(tt.want, "cache directory "+dir, "set SSLZOO_CACHE")...)
			if s.count() != 0 {
				t.Errorf("downloaded %d times into a folder it cannot write", s.count())
			}
			if b, _ := os.ReadFile(blocker); string(b) != "not a folder" {
				t.Errorf("the blocking file changed: %q", b)
			}
			if _, err := os.Lstat(dir); err == nil {
				t.Errorf("%s was created", dir)
			}
		})
	}
}

// failAfter lets n bytes through, then fails every write with err, as a
// disk that fills up mid-download does.
type failAfter struct {
	w   io.Writer
	n   int
	err error
}

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) <= f.n {
		f.n -= len(p)
		return f.w.Write(p)
	}
	n, _ := f.w.Write(p[:f.n])
	f.n = 0
	return n, f.err
}

func TestDiskFailsMidDownload(t *testing.T) {
	tests := []struct {
		name  string
		errno syscall.Errno
		want  string
	}{
		{"full", syscall.ENOSPC, "is full"},
		{"quota", syscall.EDQUOT, "is full"},
		{"remounted read-only", syscall.EROFS, "is not writable"},
		{"I/O error", syscall.EIO, "is not usable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := goodServer(t)
			next := goodServer(t)
			c, _ := newCache(t)
			var progress bytes.Buffer
			c.Progress = &progress
			inc := filepath.Join(c.Root, "tiny-net", "model.safetensors.incomplete")
			c.wrapWriter = func(w io.Writer) io.Writer {
				return &failAfter{w: w, n: 100_000, err: &os.PathError{Op: "write", Path: inc, Err: tt.errno}}
			}
			r := request(s.URL+"/f", next.URL+"/f")
			r.Bundled = func() (io.ReadCloser, error) { t.Error("bundled copy tried after a disk failure"); return nil, nil }
			_, err := c.Pull(context.Background(), r)
			if !errors.Is(err, tt.errno) {
				t.Fatalf("err = %v, want %v", err, tt.errno)
			}
			containsAll(t, "error", err.Error(), tt.want, "cache directory "+filepath.Dir(inc), "write "+inc, "SSLZOO_CACHE")
			if s.count() != 1 || next.count() != 0 {
				t.Errorf("requests: %d then %d; a disk failure must stop the pull at once", s.count(), next.count())
			}
			// No partial file, no lock, no final file.
			assertOnly(t, filepath.Dir(inc))
		})
	}
}
