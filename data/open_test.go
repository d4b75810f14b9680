package data

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenSpecs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, n := range []string{"data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"} {
		writeFile(t, dir, n+".bin", cifarRecords([][]byte{{1}}))
	}
	ds, err := Open(ctx, "cifar10:"+dir, OpenOptions{Train: true})
	if err != nil || ds.Len() != 5 || len(Classes(ds)) != 10 {
		t.Fatalf("cifar10: %v", err)
	}
	root := makeFolder(t)
	train := filepath.Join(root, "train")
	os.Mkdir(train, 0o755)
	os.Mkdir(filepath.Join(train, "z"), 0o755)
	b, _ := os.ReadFile(filepath.Join(root, "a", "1.png"))
	writeFile(t, train, "z/only.png", b)
	ds, err = Open(ctx, "folder:"+root, OpenOptions{Train: true})
	if err != nil || ds.Len() != 1 || Classes(ds)[0] != "z" {
		t.Fatalf("folder train split: %v %v", err, Classes(ds))
	}
	// No test/ or val/: the folder itself (train/ is then a class too).
	if ds, err = Open(ctx, "folder:"+root, OpenOptions{}); err != nil || ds.Len() != 9 {
		t.Fatalf("folder without test split: %v", err)
	}
	for spec, want := range map[string]string{
		"imagenet":  "unknown dataset",
		"cifar10":   "needs a folder",
		"folder:":   "needs a folder",
		"cifar10:/": "lacks test_batch.bin",
	} {
		if _, err := Open(ctx, spec, OpenOptions{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q): %v, want %q", spec, err, want)
		}
	}
}
