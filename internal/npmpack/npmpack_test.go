package npmpack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeNPM puts an npm on PATH whose pack writes content to pkg.tgz and
// prints the file name, as the real one does; it returns content's pin.
func fakeNPM(t *testing.T, content string) Pin {
	t.Helper()
	bin := t.TempDir()
	script := "#!/bin/sh\nprintf '%s' '" + content + "' > pkg.tgz\necho pkg.tgz\n"
	if err := os.WriteFile(filepath.Join(bin, "npm"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	sum := sha256.Sum256([]byte(content))
	return Pin{Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:])}
}

func TestInstall(t *testing.T) {
	pin := fakeNPM(t, "tarball")
	dir := filepath.Join(t.TempDir(), "cache", "pkg", "1.0")
	copyIn := func(tgz *os.File, into string) error {
		b, err := os.ReadFile(tgz.Name())
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(into, "data"), b, 0o644)
	}
	ctx := context.Background()

	bad := []struct {
		name    string
		pin     Pin
		extract func(*os.File, string) error
		want    string
	}{
		{"size", Pin{Size: pin.Size + 1, SHA256: pin.SHA256}, copyIn, "pkg.tgz has 7 bytes, want 8"},
		{"sha256", Pin{Size: pin.Size, SHA256: strings.Repeat("0", 64)}, copyIn, "pkg.tgz has sha256 " + pin.SHA256},
		{"extract", pin, func(*os.File, string) error { return errors.New("no files") }, "pkg.tgz: no files"},
	}
	for _, c := range bad {
		err := Install(ctx, dir, "pkg@1.0", c.pin, c.extract)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to say %q", c.name, err, c.want)
		}
		if Complete(dir) {
			t.Fatalf("%s: a failed install left a complete folder", c.name)
		}
		if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".*")); len(left) > 0 {
			t.Fatalf("%s: temporary folders left behind: %v", c.name, left)
		}
	}

	if err := Install(ctx, dir, "pkg@1.0", pin, copyIn); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "data")); err != nil || string(b) != "tarball" || !Complete(dir) {
		t.Fatalf("installed data %q, %v; complete %v", b, err, Complete(dir))
	}
	// Installed: npm is not asked again, even when it is gone.
	t.Setenv("PATH", t.TempDir())
	if err := Install(ctx, dir, "pkg@1.0", pin, copyIn); err != nil {
		t.Fatalf("second install ran npm: %v", err)
	}
	if err := Install(ctx, filepath.Join(t.TempDir(), "x"), "pkg@1.0", pin, copyIn); err == nil || !strings.Contains(err.Error(), "npm is not on PATH") {
		t.Errorf("without npm: %v", err)
	}
}
