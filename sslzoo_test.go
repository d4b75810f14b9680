package sslzoo_test

import (
	"context"
	"fmt"
	"image"
	"os"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo"
	"github.com/sslzoo/sslzoo/weights/cache"
)

// A bundled entry pulls offline from the binary into an empty cache, a
// corrupted cached copy is detected and replaced, and --no-bundled offline
// has nowhere to get it from.
func TestPullBundled(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	c := &cache.Cache{Root: root, Offline: true}
	path, err := sslzoo.Pull(ctx, "simclr-resnet18-fmnist", &sslzoo.Options{Cache: c})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(path, root) {
		t.Fatalf("pulled to %s, outside the cache %s", path, root)
	}
	good, _ := os.ReadFile(path)
	bad := append([]byte(nil), good...)
	bad[len(bad)/2] ^= 1
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := sslzoo.Pull(ctx, "simclr-resnet18-fmnist", &sslzoo.Options{Cache: c}); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(path); string(again) != string(good) {
		t.Fatal("a corrupt cached file was kept")
	}
	os.Remove(path)
	_, err = sslzoo.Pull(ctx, "simclr-resnet18-fmnist", &sslzoo.Options{Cache: c, NoBundled: true})
	if err == nil || !strings.Contains(err.Error(), "offline") {
		t.Fatalf("offline without the bundled copy: %v", err)
	}
	if _, err := sslzoo.Pull(ctx, "simclr-resnet18-fmnsit", &sslzoo.Options{Cache: c}); err == nil || !strings.Contains(err.Error(), "did you mean simclr-resnet18-fmnist") {
		t.Fatalf("typo: %v", err)
	}
}

func ExampleLoad() {
	os.Setenv("SSLZOO_CACHE", os.TempDir()+"/sslzoo-example-cache")
	enc, err := sslzoo.Load(context.Background(), "simclr-resnet18-fmnist", &sslzoo.Options{Engine: "go"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer enc.Close()
	img := image.NewGray(image.Rect(0, 0, 28, 28)) // any size: resized and cropped as the metadata says
	vecs, err := enc.EmbedImages([]image.Image{img, img})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(vecs), "embeddings of", len(vecs[0]), "values; channels", enc.Preprocess().Channels)
	// Output: 2 embeddings of 128 values; channels L
}
