package cachedir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRoot(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name              string
		sslzoo, xdg, home string
		want              string
		wantErr           bool
	}{
		{name: "SSLZOO_CACHE wins", sslzoo: "/srv/zoo", xdg: "/x", home: "/h", want: "/srv/zoo"},
		{name: "relative SSLZOO_CACHE made absolute", sslzoo: "rel/c", home: "/h", want: filepath.Join(wd, "rel/c")},
		{name: "XDG_CACHE_HOME", xdg: "/x/cache", home: "/h", want: "/x/cache/sslzoo"},
		{name: "relative XDG_CACHE_HOME made absolute", xdg: "cache", home: "/h", want: filepath.Join(wd, "cache/sslzoo")},
		{name: "cleaned", sslzoo: "/srv//zoo/", want: "/srv/zoo"},
		{name: "home", home: "/home/u", want: "/home/u/.cache/sslzoo"},
		{name: "nothing set", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(Env, tt.sslzoo)
			t.Setenv("XDG_CACHE_HOME", tt.xdg)
			t.Setenv("HOME", tt.home)
			got, err := Root()
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Root() = %q, want an error", got)
				}
				if !errors.Is(err, ErrNoRoot) || !strings.Contains(err.Error(), "set SSLZOO_CACHE") || !strings.Contains(err.Error(), "HOME") {
					t.Fatalf("error %q does not say what is missing and what to set", err)
				}
				if d := Dir(); d != filepath.Join(os.TempDir(), "sslzoo-cache") {
					t.Fatalf("Dir() = %q, want the temp fallback", d)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("Root() = %q, want %q", got, tt.want)
			}
			if d := Dir(); d != tt.want {
				t.Fatalf("Dir() = %q, want %q", d, tt.want)
			}
		})
	}
}

func ExampleRoot() {
	os.Setenv(Env, "/srv/sslzoo-cache")
	defer os.Unsetenv(Env)
	root, err := Root()
	if err != nil {
		// No HOME and nothing set: the error says to set SSLZOO_CACHE.
		fmt.Println(err)
		return
	}
	fmt.Println(filepath.Join(root, "resnet18-simclr", "model.safetensors"))
	// Output: /srv/sslzoo-cache/resnet18-simclr/model.safetensors
}
