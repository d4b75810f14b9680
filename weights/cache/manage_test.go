package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fill pulls payload as name/file from a bundled copy.
func fill(t *testing.T, c *Cache, name, file string) string {
	t.Helper()
	r := request()
	r.Name, r.File = name, file
	r.Bundled = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(payload)), nil }
	p, err := c.Pull(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestList(t *testing.T) {
	c, _ := newCache(t)
	if items, err := c.List(); err != nil || len(items) != 0 {
		t.Fatalf("empty cache: %v, %v", items, err)
	}
	c.Root = filepath.Join(c.Root, "not-yet")
	if items, err := c.List(); err != nil || len(items) != 0 {
		t.Fatalf("missing root: %v, %v", items, err)
	}
	fill(t, c, "vit-mae", "model.safetensors")
	fill(t, c, "bert-mlm", "vocab.txt")
	fill(t, c, "bert-mlm", "model.safetensors")
	dir := filepath.Join(c.Root, "resnet18")
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "model.safetensors.incomplete"), payload[:10], 0o644)
	os.WriteFile(filepath.Join(dir, "model.safetensors.lock"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, ".hidden"), nil, 0o644)
	os.WriteFile(filepath.Join(c.Root, "stray-file"), nil, 0o644)
	os.MkdirAll(filepath.Join(c.Root, "onnxruntime", "1.30.0"), 0o755)

	items, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		s := it.Name + "/" + it.File
		if it.Incomplete {
			s += " (incomplete)"
		}
		got = append(got, s)
		want := int64(len(payload))
		if it.Incomplete {
			want = 10
		}
		if it.Size != want || it.ModTime.IsZero() {
			t.Errorf("%s: size %d, mtime %v", s, it.Size, it.ModTime)
		}
	}
	want := []string{"bert-mlm/model.safetensors", "bert-mlm/vocab.txt", "resnet18/model.safetensors (incomplete)", "vit-mae/model.safetensors"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("List = %q, want %q", got, want)
	}
}

func TestVerify(t *testing.T) {
	c, _ := newCache(t)
	p := fill(t, c, "tiny-net", "model.safetensors")
	if err := c.Verify("tiny-net", "model.safetensors", strings.ToUpper(payloadSHA)); err != nil {
		t.Fatalf("good file: %v", err)
	}
	tests := []struct {
		name, file, sha string
		corrupt         bool
		is              error
		want            []string
	}{
		{name: "tiny-net", file: "model.safetensors", sha: payloadSHA, corrupt: true, is: ErrChecksum,
			want: []string{"verify tiny-net/model.safetensors", p, "expected " + payloadSHA, "got " + sha(payload[:5]), "sslzoo pull tiny-net"}},
		{name: "tiny-net", file: "other.bin", sha: payloadSHA, is: fs.ErrNotExist, want: []string{"not in the cache"}},
		{name: "../etc", file: "passwd", sha: payloadSHA, want: []string{`name "../etc" must start with a letter or digit`}},
		{name: "tiny-net", file: "model.safetensors", sha: "abc", want: []string{"not 64 hex digits"}},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+tt.file, func(t *testing.T) {
			if tt.corrupt {
				os.WriteFile(p, payload[:5], 0o644)
			}
			err := c.Verify(tt.name, tt.file, tt.sha)
			if err == nil {
				t.Fatal("Verify passed")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) is false", err, tt.is)
			}
			containsAll(t, "error", err.Error(), tt.want...)
		})
	}
}

func TestRemove(t *testing.T) {
	c, _ := newCache(t)
	c.Root = filepath.Join(c.Root, "cache")
	fill(t, c, "tiny-net", "model.safetensors")
	fill(t, c, "keep-me", "model.safetensors")
	outside := filepath.Join(filepath.Dir(c.Root), "outside")
	os.MkdirAll(outside, 0o755)

	for _, name := range []string{"..", "../outside", "/tmp", "tiny-net/model.safetensors", ".", "", "tiny-net/.."} {
		if err := c.Remove(name); err == nil {
			t.Errorf("Remove(%q) succeeded", name)
		}
	}
	if err := c.Remove("tiny-net"); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove("tiny-net"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("second Remove: %v, want fs.ErrNotExist", err)
	}
	for _, p := range []string{outside, filepath.Join(c.Root, "keep-me", "model.safetensors")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s is gone: %v", p, err)
		}
	}

	// A pull in progress holds the lock; Remove must not delete under it.
	lock := filepath.Join(c.Root, "keep-me", "model.safetensors.lock")
	unlock, ok, err := lockPath(lock)
	if err != nil || !ok {
		t.Fatalf("lock: %v %v", ok, err)
	}
	err = c.Remove("keep-me")
	unlock()
	if err == nil || !strings.Contains(err.Error(), "is running") {
		t.Fatalf("Remove during a pull: %v", err)
	}
	if err := c.Remove("keep-me"); err != nil {
		t.Fatal(err)
	}
	assertOnly(t, c.Root)
}
