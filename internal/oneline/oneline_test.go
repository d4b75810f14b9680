package oneline

import (
	"fmt"
	"testing"
)

func TestClip(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 24, "short"},
		{"{\n\t\"a\": 1}", 24, "{  \"a\": 1}"},
		{"abcdefgh", 4, "abcd..."},
		{"aé", 2, "a..."}, // é is two bytes: never cut inside it
		{"x\x7fy", 8, "x y"},
		{"abc", 0, "..."},
	} {
		if got := Clip(c.in, c.n); got != c.want {
			t.Errorf("Clip(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

func TestFlatten(t *testing.T) {
	if got := Flatten(" a\n  b\t\tc \r\n"); got != "a b c" {
		t.Errorf("Flatten = %q", got)
	}
}

func ExampleClip() {
	name := "model\nname that goes on and on"
	fmt.Printf("model %q is not served here\n", Clip(name, 10))
	// Output: model "model name..." is not served here
}
