package filehash

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSHA256(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("abc"), 0o644)
	got, err := SHA256(p)
	// The FIPS 180-2 test vector for "abc".
	if want := "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; err != nil || got != want {
		t.Fatalf("SHA256(abc) = %s, %v; want %s", got, err, want)
	}
	if _, err := SHA256(p + "-missing"); err == nil {
		t.Fatal("missing file hashed")
	}
}
