package cache

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sslzoo/sslzoo/internal/safepath"
)

func TestCheckName(t *testing.T) {
	good := []string{"resnet18-simclr-fmnist", "model.safetensors", "v1.0", "a", "B_2+cpu", strings.Repeat("x", maxNameLen)}
	bad := map[string]string{
		"":                        "is empty",
		".":                       "must start with a letter or digit",
		"..":                      "must start with a letter or digit",
		"../x":                    "must start with a letter or digit",
		"a/b":                     `holds '/'`,
		`a\b`:                     `holds '\\'`,
		"/abs":                    "must start with a letter or digit",
		"a..b":                    `holds ".."`,
		".hidden":                 "must start with a letter or digit",
		"-flag":                   "must start with a letter or digit",
		"with space":              `holds ' '`,
		"ünï":                     "must start with a letter or digit",
		"x\x00y":                  `holds '\x00'`,
		"model.bin.incomplete":    "keeps for itself",
		"model.bin.lock":          "keeps for itself",
		strings.Repeat("x", 201):  "the limit is 200",
		"C:evil":                  `holds ':'`,
		"a\nb":                    `holds '\n'`,
		"tiny-net/../../etc":      `holds '/'`,
		"model.safetensors/../..": `holds '/'`,
	}
	for _, s := range good {
		if err := checkName("name", s); err != nil {
			t.Errorf("checkName(%q): %v", s, err)
		}
	}
	for s, want := range bad {
		err := checkName("name", s)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("checkName(%q) = %v, want an error with %q", s, err, want)
		}
	}
}

func TestBadRequests(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Request, *Cache)
		want string
	}{
		{"escaping name", func(r *Request, _ *Cache) { r.Name = "../../etc" }, `name "../../etc"`},
		{"escaping file", func(r *Request, _ *Cache) { r.File = "../x" }, `file "../x"`},
		{"absolute file", func(r *Request, _ *Cache) { r.File = "/etc/passwd" }, `file "/etc/passwd"`},
		{"no sha256", func(r *Request, _ *Cache) { r.SHA256 = "" }, "must be pinned by its sha256"},
		{"short sha256", func(r *Request, _ *Cache) { r.SHA256 = "abcd" }, "not 64 hex digits"},
		{"non-hex sha256", func(r *Request, _ *Cache) { r.SHA256 = strings.Repeat("g", 64) }, "is not hex"},
		{"negative size", func(r *Request, _ *Cache) { r.Size = -1 }, "size -1 is negative"},
		{"no root", func(_ *Request, c *Cache) { c.Root = "" }, "Root is empty"},
		{"no source", func(r *Request, _ *Cache) { r.URLs = nil }, "no source to download it from"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newCache(t)
			r := request("http://127.0.0.1:1/never")
			tt.edit(&r, c)
			_, err := c.Pull(context.Background(), r)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one with %q", err, tt.want)
			}
			if c.Root != "" {
				entries, _ := os.ReadDir(c.Root)
				if len(entries) != 0 {
					t.Fatalf("a refused request left %v in the cache", entries)
				}
			}
		})
	}
}

func TestNew(t *testing.T) {
	root := t.TempDir()
	tests := []struct {
		name        string
		env         map[string]string
		wantOffline bool
		wantMirror  string
		wantRoot    string
		wantErr     string
	}{
		{name: "defaults", env: map[string]string{"SSLZOO_CACHE": root}, wantRoot: root},
		{name: "xdg", env: map[string]string{"XDG_CACHE_HOME": root}, wantRoot: filepath.Join(root, "sslzoo")},
		{name: "offline 1", env: map[string]string{"SSLZOO_CACHE": root, EnvOffline: "1"}, wantRoot: root, wantOffline: true},
		{name: "offline true", env: map[string]string{"SSLZOO_CACHE": root, EnvOffline: "True"}, wantRoot: root, wantOffline: true},
		{name: "offline 0", env: map[string]string{"SSLZOO_CACHE": root, EnvOffline: "0"}, wantRoot: root},
		{name: "offline junk", env: map[string]string{"SSLZOO_CACHE": root, EnvOffline: "maybe"}, wantErr: `SSLZOO_OFFLINE="maybe": want 1 or 0`},
		{name: "http mirror", env: map[string]string{"SSLZOO_CACHE": root, EnvMirror: "https://mirror.example/zoo"}, wantRoot: root, wantMirror: "https://mirror.example/zoo"},
		{name: "file mirror", env: map[string]string{"SSLZOO_CACHE": root, EnvMirror: "file:///srv/zoo"}, wantRoot: root, wantMirror: "file:///srv/zoo"},
		{name: "bad mirror", env: map[string]string{"SSLZOO_CACHE": root, EnvMirror: "/srv/zoo"}, wantErr: `SSLZOO_MIRROR="/srv/zoo"`},
		{name: "no home", env: map[string]string{}, wantErr: "set SSLZOO_CACHE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"SSLZOO_CACHE", "XDG_CACHE_HOME", "HOME", EnvOffline, EnvMirror} {
				t.Setenv(k, tt.env[k])
			}
			c, err := New()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Root != tt.wantRoot || c.Offline != tt.wantOffline || c.Mirror != tt.wantMirror {
				t.Fatalf("New() = root %q offline %v mirror %q", c.Root, c.Offline, c.Mirror)
			}
			if c.Retries != DefaultRetries || c.Backoff != DefaultBackoff || c.Stall != DefaultStall {
				t.Fatalf("New() retry policy %d %s %s", c.Retries, c.Backoff, c.Stall)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		base time.Duration
		n    int
		want time.Duration
	}{
		{500 * ms, 1, 500 * ms}, {500 * ms, 2, time.Second}, {500 * ms, 3, 2 * time.Second},
		{500 * ms, 10, maxBackoff}, {500 * ms, 1000, maxBackoff}, {0, 3, 0}, {ms, 0, 0},
		{time.Hour, 1, maxBackoff},
	}
	for _, tt := range tests {
		if got := backoff(tt.base, tt.n); got != tt.want {
			t.Errorf("backoff(%s, %d) = %s, want %s", tt.base, tt.n, got, tt.want)
		}
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in                string
		start, end, total int64
		ok                bool
	}{
		{"bytes 100-299/300", 100, 299, 300, true},
		{"bytes 0-0/1", 0, 0, 1, true},
		{"bytes 5-9/*", 5, 9, -1, true},
		{"bytes 9-5/10", 0, 0, 0, false},
		{"bytes 0-10/10", 0, 0, 0, false},
		{"bytes */10", 0, 0, 0, false},
		{"items 0-1/2", 0, 0, 0, false},
		{"", 0, 0, 0, false},
		{"bytes 0-99999999999999999999/1", 0, 0, 0, false},
	}
	for _, tt := range tests {
		s, e, n, err := parseContentRange(tt.in)
		if tt.ok != (err == nil) || tt.ok && (s != tt.start || e != tt.end || n != tt.total) {
			t.Errorf("parseContentRange(%q) = %d %d %d %v", tt.in, s, e, n, err)
		}
	}
}

// Both lock implementations must keep goroutines out of each other's way,
// and must leave no lock file behind.
func TestLockExclusion(t *testing.T) {
	impls := map[string]func(string) (func(), bool, error){"platform": lockPath, "excl": exclPath}
	for name, impl := range impls {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f.lock")
			var inside, most, total atomic.Int32
			var wg sync.WaitGroup
			for i := 0; i < 8; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := 0; j < 20; j++ {
						unlock, err := acquireWith(impl, path)
						if err != nil {
							t.Error(err)
							return
						}
						n := inside.Add(1)
						if n > most.Load() {
							most.Store(n)
						}
						time.Sleep(50 * time.Microsecond)
						inside.Add(-1)
						total.Add(1)
						unlock()
					}
				}()
			}
			wg.Wait()
			if most.Load() != 1 || total.Load() != 160 {
				t.Fatalf("at most %d holders at once (want 1), %d critical sections (want 160)", most.Load(), total.Load())
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Fatalf("lock file left behind: %v", err)
			}
		})
	}
}

func acquireWith(impl func(string) (func(), bool, error), path string) (func(), error) {
	for {
		unlock, ok, err := impl(path)
		if err != nil || ok {
			return unlock, err
		}
		time.Sleep(20 * time.Microsecond)
	}
}

func TestExclLockStaleness(t *testing.T) {
	savedBeat, savedStale := exclHeartbeat, exclStale
	exclHeartbeat, exclStale = 10*time.Millisecond, 100*time.Millisecond
	defer func() { exclHeartbeat, exclStale = savedBeat, savedStale }()
	path := filepath.Join(t.TempDir(), "f.lock")

	// A lock left by a dead process (old mtime) is taken over.
	os.WriteFile(path, []byte("pid 1\n"), 0o644)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(path, old, old)
	unlock, ok, err := exclPath(path)
	if err != nil || !ok {
		t.Fatalf("stale lock not taken over: %v %v", ok, err)
	}
	// A live holder's heartbeat keeps it fresh well past exclStale.
	deadline := time.Now().Add(3 * exclStale)
	for time.Now().Before(deadline) {
		if u, ok, _ := exclPath(path); ok {
			u()
			t.Fatal("took a lock whose holder is alive")
		}
		time.Sleep(5 * time.Millisecond)
	}
	unlock()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("lock file left behind: %v", err)
	}
}

// A pin may be the hash prefix an author publishes (torchvision's file
// names); an unpinned request takes the file and reports its digest.
func TestPrefixAndUnpinned(t *testing.T) {
	body := []byte("published weights")
	full := sha(body)
	dir := t.TempDir()
	src := filepath.Join(dir, "w.pth")
	if err := os.WriteFile(src, body, 0o644); err != nil {
		t.Fatal(err)
	}
	var warned []string
	c := &Cache{Root: filepath.Join(dir, "cache"), Warn: func(s string) { warned = append(warned, s) }}
	ctx := context.Background()
	if _, err := c.Pull(ctx, Request{Name: "a", File: "w.pth", SHA256: full[:8], URLs: []string{"file://" + src}}); err != nil {
		t.Fatalf("prefix pin: %v", err)
	}
	_, err := c.Pull(ctx, Request{Name: "b", File: "w.pth", SHA256: "00000000", URLs: []string{"file://" + src}})
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("wrong prefix: %v, want a checksum error", err)
	}
	if _, err := c.Pull(ctx, Request{Name: "c", File: "w.pth", URLs: []string{"file://" + src}}); err == nil {
		t.Fatal("empty sha256 without Unpinned was accepted")
	}
	if _, err := c.Pull(ctx, Request{Name: "d", File: "w.pth", Unpinned: true, URLs: []string{"file://" + src}}); err != nil {
		t.Fatalf("unpinned: %v", err)
	}
	if len(warned) == 0 || !strings.Contains(warned[len(warned)-1], full) {
		t.Fatalf("unpinned pull did not report the digest: %q", warned)
	}
}

// TestSymlinkOutOfRoot: a symlink in the cache that leads outside the root
// (NAME as a folder link, FILE as a file link, a dangling FILE link) stops
// Pull and Verify before anything is read or written through it, and
// Remove deletes the link, not what it points at.
func TestSymlinkOutOfRoot(t *testing.T) {
	outside := t.TempDir()
	victim := filepath.Join(outside, "model.safetensors")
	if err := os.WriteFile(victim, []byte("not yours"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "model.safetensors")
	if err := os.WriteFile(src, payload, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, link, target string }{
		{"folder", "tiny-net", outside},
		{"file", "tiny-net/model.safetensors", victim},
		{"dangling", "tiny-net/model.safetensors", filepath.Join(outside, "new")},
	} {
		t.Run(c.name, func(t *testing.T) {
			cache, _ := newCache(t)
			link := filepath.Join(cache.Root, c.link)
			if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(c.target, link); err != nil {
				t.Fatal(err)
			}
			if _, err := cache.Pull(context.Background(), request(fileURL(src))); !errors.Is(err, safepath.ErrEscape) {
				t.Errorf("Pull: %v, want a refusal", err)
			}
			if err := cache.Verify("tiny-net", "model.safetensors", payloadSHA); !errors.Is(err, safepath.ErrEscape) {
				t.Errorf("Verify: %v, want a refusal", err)
			}
			if b, _ := os.ReadFile(victim); string(b) != "not yours" {
				t.Errorf("the file outside the cache now holds %d bytes", len(b))
			}
			assertOnly(t, outside, "model.safetensors")
		})
	}
	cache, _ := newCache(t)
	if err := os.Symlink(outside, filepath.Join(cache.Root, "tiny-net")); err != nil {
		t.Fatal(err)
	}
	if err := cache.Remove("tiny-net"); err == nil || !strings.Contains(err.Error(), "not a folder the cache made") {
		t.Errorf("Remove through a folder link: %v", err)
	}
	assertOnly(t, outside, "model.safetensors")
}
