package safepath

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestJoin(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	for _, d := range []string{"a/b", "in"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"up":       outside,                           // a folder outside
		"passwd":   "/etc/passwd",                     // a file outside
		"rel-up":   "../" + filepath.Base(outside),    // relative, still outside
		"dangling": filepath.Join(outside, "missing"), // creating through it writes outside
		"a/ok":     "../in",                           // stays inside
		"loop":     "loop",                            // never resolves
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"x", "a/b", "a/b/new/deeper", "a/ok", "a/ok/new", "in/../a", "."} {
		got, err := Join(root, name)
		if err != nil || got != filepath.Join(root, name) {
			t.Errorf("Join(%q) = %q, %v; want it accepted", name, got, err)
		}
	}
	for _, name := range []string{"", "../x", "a/../../x", "/etc/passwd", "up", "up/x", "passwd", "rel-up/x", "dangling", "loop", "a/b/../../up/new"} {
		if got, err := Join(root, name); !errors.Is(err, ErrEscape) {
			t.Errorf("Join(%q) = %q, %v; want ErrEscape", name, got, err)
		}
	}
	// A root that is itself a symlink is followed before the comparison.
	alias := filepath.Join(t.TempDir(), "alias")
	if err := os.Symlink(root, alias); err != nil {
		t.Fatal(err)
	}
	if _, err := Join(alias, "a/ok/x"); err != nil {
		t.Errorf("through a symlinked root: %v", err)
	}
	if _, err := Join(alias, "up"); !errors.Is(err, ErrEscape) {
		t.Errorf("escape through a symlinked root: %v", err)
	}
	// Nothing exists below a missing root.
	if _, err := Join(filepath.Join(root, "none"), "x/y"); err != nil {
		t.Errorf("missing root: %v", err)
	}
}
