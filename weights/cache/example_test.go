package cache_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sslzoo/sslzoo/weights/cache"
)

// Pull a pinned file over HTTP into the cache, find it there on the next
// Pull without a download, list and verify it, and remove the entry.
func Example() {
	weights := []byte("pretend these are safetensors bytes")
	sum := sha256.Sum256(weights)
	pin := hex.EncodeToString(sum[:])
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "model.safetensors", time.Time{}, strings.NewReader(string(weights)))
	}))
	defer srv.Close()

	root, err := os.MkdirTemp("", "sslzoo-cache-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(root)

	// cache.New() reads SSLZOO_CACHE, SSLZOO_MIRROR and SSLZOO_OFFLINE;
	// here the fields are set by hand. A CLI sets Progress to os.Stderr.
	c := &cache.Cache{Root: root, Retries: 3, Backoff: 100 * time.Millisecond}
	req := cache.Request{
		Name:   "tiny-demo",
		File:   "model.safetensors",
		Size:   int64(len(weights)),
		SHA256: pin,
		URLs:   []string{srv.URL + "/tiny-demo/model.safetensors"},
	}
	for i := 0; i < 2; i++ {
		path, err := c.Pull(context.Background(), req)
		if err != nil {
			fmt.Println(err)
			return
		}
		rel, _ := filepath.Rel(root, path)
		fmt.Println("pulled", filepath.ToSlash(rel))
	}

	items, _ := c.List()
	for _, it := range items {
		fmt.Println("cached", it.Name, it.File, it.Size, "bytes")
	}
	fmt.Println("verify:", c.Verify("tiny-demo", "model.safetensors", pin))
	fmt.Println("remove:", c.Remove("tiny-demo"))

	// Offline, with nothing cached, Pull says what to do.
	c.Offline = true
	_, err = c.Pull(context.Background(), req)
	msg := strings.ReplaceAll(err.Error(), root, "ROOT")
	fmt.Println(strings.ReplaceAll(msg, strings.TrimPrefix(srv.URL, "http://127.0.0.1:"), "PORT"))
	// Output:
	// pulled tiny-demo/model.safetensors
	// pulled tiny-demo/model.safetensors
	// cached tiny-demo model.safetensors 35 bytes
	// verify: <nil>
	// remove: <nil>
	// pull tiny-demo/model.safetensors: not in the cache (ROOT/tiny-demo/model.safetensors) and offline mode is on (SSLZOO_OFFLINE): run `sslzoo pull tiny-demo` where the network is reachable, unset SSLZOO_OFFLINE, or set SSLZOO_MIRROR to a file:// mirror that holds tiny-demo/model.safetensors
	//   1. url http://127.0.0.1:PORT/tiny-demo/model.safetensors: skipped: offline
}

// A file shipped inside the binary is the last source, after the mirror and
// the URLs; it is checked like a download.
func Example_bundled() {
	root, err := os.MkdirTemp("", "sslzoo-cache-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(root)
	vocab := []byte("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
	sum := sha256.Sum256(vocab)
	c := &cache.Cache{Root: root, Offline: true}
	req := cache.Request{
		Name:    "bert-tiny",
		File:    "vocab.txt",
		SHA256:  hex.EncodeToString(sum[:]),
		Bundled: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(vocab)), nil },
	}
	path, err := c.Pull(context.Background(), req)
	if err != nil {
		fmt.Println(err)
		return
	}
	rel, _ := filepath.Rel(root, path)
	fmt.Println(filepath.ToSlash(rel))

	// NoBundled insists on a real source.
	if err := c.Remove("bert-tiny"); err != nil {
		fmt.Println(err)
		return
	}
	req.NoBundled = true
	_, err = c.Pull(context.Background(), req)
	fmt.Println(strings.ReplaceAll(err.Error(), root, "ROOT"))
	// Output:
	// bert-tiny/vocab.txt
	// pull bert-tiny/vocab.txt: not in the cache (ROOT/bert-tiny/vocab.txt) and offline mode is on (SSLZOO_OFFLINE): run `sslzoo pull bert-tiny` where the network is reachable, unset SSLZOO_OFFLINE, or set SSLZOO_MIRROR to a file:// mirror that holds bert-tiny/vocab.txt
}
