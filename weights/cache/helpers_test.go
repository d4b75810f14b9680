package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// payload is the test file: more than one 256 KiB read buffer, so resumes
// happen in the middle of a stream.
var payload = func() []byte {
	b := make([]byte, 300_000)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}()

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

var payloadSHA = sha(payload)

// request is the Request for payload, with the given URLs.
func request(urls ...string) Request {
	return Request{Name: "tiny-net", File: "model.safetensors", Size: int64(len(payload)), SHA256: payloadSHA, URLs: urls}
}

// server is an httptest server that records every request it gets.
type server struct {
	*httptest.Server
	mu     sync.Mutex
	ranges []string // the Range header of each request, "" when none
	paths  []string // the URL path of each request
}

// newServer serves with h, which is told the request's index (0 first).
func newServer(t *testing.T, h func(w http.ResponseWriter, r *http.Request, n int)) *server {
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		n := len(s.ranges)
		s.ranges = append(s.ranges, r.Header.Get("Range"))
		s.paths = append(s.paths, r.URL.Path)
		s.mu.Unlock()
		h(w, r, n)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...)
}

func (s *server) urlPaths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.paths...)
}

func (s *server) count() int { return len(s.requests()) }

// serve answers with content like a static file server (Range included).
func serve(content []byte) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, r *http.Request, _ int) {
		http.ServeContent(w, r, "f", time.Time{}, bytes.NewReader(content))
	}
}

func goodServer(t *testing.T) *server { return newServer(t, serve(payload)) }

// syncBuffer is a Progress writer shared by goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// warnings collects Warn's lines.
type warnings struct {
	mu    sync.Mutex
	lines []string
}

func (w *warnings) add(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines = append(w.lines, s)
}

func (w *warnings) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n")
}

// newCache is a Cache in a fresh folder with fast retries.
func newCache(t *testing.T) (*Cache, *warnings) {
	w := &warnings{}
	return &Cache{Root: t.TempDir(), Retries: 2, Backoff: time.Millisecond, Warn: w.add}, w
}

// assertCached checks that path holds payload and that nothing but the
// file is left in its folder.
func assertCached(t *testing.T, c *Cache, path string) {
	t.Helper()
	want := filepath.Join(c.Root, "tiny-net", "model.safetensors")
	if path != want {
		t.Fatalf("path %q, want %q", path, want)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("cached file differs from the payload (%d bytes, want %d)", len(got), len(payload))
	}
	assertOnly(t, filepath.Dir(path), "model.safetensors")
}

// assertOnly checks that dir holds exactly the named entries.
func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Fatalf("%s holds %q, want %q", dir, got, names)
	}
}

func fileURL(p string) string { return "file://" + filepath.ToSlash(p) }

func containsAll(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not contain %q:\n%s", what, sub, s)
		}
	}
}
