package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPullHTTP(t *testing.T) {
	s := goodServer(t)
	c, _ := newCache(t)
	var bar bytes.Buffer
	c.Progress = &bar
	p, err := c.Pull(context.Background(), request(s.URL+"/model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	assertCached(t, c, p)
	containsAll(t, "progress output", bar.String(), "tiny-net/model.safetensors", "100%")

	// A second pull verifies the cached file and asks nobody.
	if _, err := c.Pull(context.Background(), request(s.URL+"/model.safetensors")); err != nil {
		t.Fatal(err)
	}
	if n := s.count(); n != 1 {
		t.Fatalf("server saw %d requests, want 1", n)
	}
}

// Each case is a first source with a real fault; the second source is
// good, so the pull must warn about the first and succeed from the second.
func TestPullFirstSourceFails(t *testing.T) {
	wrong := bytes.Clone(payload)
	wrong[1234] ^= 0xff
	tests := []struct {
		name    string
		handler func(w http.ResponseWriter, r *http.Request, n int)
		want    []string // in the warning
		// wantRetries is how many requests the bad server gets: faults
		// worth retrying get 1+Retries, the others one.
		wantRequests int
	}{
		{
			name:         "404",
			handler:      func(w http.ResponseWriter, r *http.Request, _ int) { http.NotFound(w, r) },
			want:         []string{"HTTP 404 Not Found"},
			wantRequests: 1,
		},
		{
			name:         "wrong checksum",
			handler:      serve(wrong),
			want:         []string{"sha256 mismatch", "expected " + payloadSHA, "got " + sha(wrong)},
			wantRequests: 1,
		},
		{
			name: "truncated body, every time",
			handler: func(w http.ResponseWriter, r *http.Request, _ int) {
				// Announce the whole file, send half; the server then
				// closes the connection.
				w.Header().Set("Content-Length", fmt.Sprint(len(payload)))
				w.Write(payload[:len(payload)/2])
			},
			want:         []string{"transfer broke after", "unexpected EOF"},
			wantRequests: 3,
		},
		{
			name: "clean EOF before the expected size",
			handler: func(w http.ResponseWriter, r *http.Request, _ int) {
				// Chunked, so the client cannot tell it is short.
				w.(http.Flusher).Flush()
				w.Write(payload[:1000])
			},
			want:         []string{"truncated", "after 1000 of 300000 bytes"},
			wantRequests: 3,
		},
		{
			name: "Content-Length larger than expected",
			handler: func(w http.ResponseWriter, r *http.Request, _ int) {
				w.Header().Set("Content-Length", fmt.Sprint(len(payload)+1))
				w.Write(append(bytes.Clone(payload), 0))
			},
			want:         []string{"the source has 300001 bytes, expected 300000"},
			wantRequests: 1,
		},
		{
			name: "chunked body larger than expected",
			handler: func(w http.ResponseWriter, r *http.Request, _ int) {
				w.(http.Flusher).Flush()
				w.Write(payload)
				w.Write([]byte("more"))
			},
			want:         []string{"larger than expected", "more than the expected 300000 bytes"},
			wantRequests: 1,
		},
		{
			name: "500",
			handler: func(w http.ResponseWriter, r *http.Request, _ int) {
				http.Error(w, "busy", http.StatusInternalServerError)
			},
			want:         []string{"HTTP 500 Internal Server Error"},
			wantRequests: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := newServer(t, tt.handler)
			good := goodServer(t)
			c, warns := newCache(t)
			p, err := c.Pull(context.Background(), request(bad.URL+"/f", good.URL+"/f"))
			if err != nil {
				t.Fatal(err)
			}
			assertCached(t, c, p)
			if n := bad.count(); n != tt.wantRequests {
				t.Errorf("bad source got %d requests, want %d", n, tt.wantRequests)
			}
			containsAll(t, "warnings", warns.String(), append(tt.want, "url "+bad.URL+"/f", "trying the next source")...)
		})
	}
}

func TestPullAllSourcesFail(t *testing.T) {
	missing := newServer(t, func(w http.ResponseWriter, r *http.Request, _ int) { http.NotFound(w, r) })
	wrong := newServer(t, serve(bytes.Repeat([]byte{7}, len(payload))))
	c, _ := newCache(t)
	r := request(missing.URL+"/a", wrong.URL+"/b")
	r.Bundled = func() (io.ReadCloser, error) { return nil, errors.New("no bundled copy in this build") }
	_, err := c.Pull(context.Background(), r)
	var pe *PullError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is not a *PullError", err)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a summary and one line per source, got:\n%s", err)
	}
	containsAll(t, "summary", lines[0], "pull tiny-net/model.safetensors", "3 tried")
	containsAll(t, "line 1", lines[1], "url "+missing.URL+"/a", "HTTP 404")
	containsAll(t, "line 2", lines[2], "url "+wrong.URL+"/b", "sha256 mismatch", "expected "+payloadSHA, "got "+sha(bytes.Repeat([]byte{7}, len(payload))))
	containsAll(t, "line 3", lines[3], "bundled", "no bundled copy in this build")
	if !errors.Is(err, ErrChecksum) {
		t.Error("errors.Is(err, ErrChecksum) is false")
	}
	assertOnly(t, filepath.Join(c.Root, "tiny-net"))
}

// hijackDrop sends the response head and the first n bytes of payload, then
// drops the connection.
func hijackDrop(w http.ResponseWriter, n int) {
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(payload))
	buf.Write(payload[:n])
	buf.Flush()
	conn.Close()
}

func TestResume(t *testing.T) {
	const cut = 123_457
	tests := []struct {
		name       string
		second     func(w http.ResponseWriter, r *http.Request)
		wantRanges []string
	}{
		{
			name:       "206 from the offset",
			second:     func(w http.ResponseWriter, r *http.Request) { serve(payload)(w, r, 1) },
			wantRanges: []string{"", fmt.Sprintf("bytes=%d-", cut)},
		},
		{
			name: "200 that ignores Range: start again",
			second: func(w http.ResponseWriter, r *http.Request) {
				w.Write(payload)
			},
			wantRanges: []string{"", fmt.Sprintf("bytes=%d-", cut)},
		},
		{
			name: "206 from the wrong offset, then a good one",
			second: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(payload)-1, len(payload)))
				w.WriteHeader(http.StatusPartialContent)
				w.Write(payload)
			},
			// The bad range is not retried on this source; the next one
			// (a good server) resumes from the same partial.
			wantRanges: []string{"", fmt.Sprintf("bytes=%d-", cut)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if n == 0 {
					hijackDrop(w, cut)
					return
				}
				tt.second(w, r)
			})
			next := goodServer(t)
			c, warns := newCache(t)
			p, err := c.Pull(context.Background(), request(s.URL+"/f", next.URL+"/f"))
			if err != nil {
				t.Fatal(err)
			}
			assertCached(t, c, p)
			if got := s.requests(); strings.Join(got, ",") != strings.Join(tt.wantRanges, ",") {
				t.Fatalf("Range headers %q, want %q", got, tt.wantRanges)
			}
			if tt.name == "206 from the wrong offset, then a good one" {
				containsAll(t, "warnings", warns.String(), "HTTP 206 with a bad range")
				if got := next.requests(); len(got) != 1 || got[0] != fmt.Sprintf("bytes=%d-", cut) {
					t.Fatalf("next source got Range %q, want a resume at %d", got, cut)
				}
			}
		})
	}
}

func TestResumeLeftoverPartial(t *testing.T) {
	tests := []struct {
		name       string
		partial    []byte
		size       int64
		wantRanges []string
	}{
		{"half from an earlier run", payload[:100_000], int64(len(payload)), []string{"bytes=100000-"}},
		{"complete partial, size unknown (HTTP 416)", payload, 0, []string{fmt.Sprintf("bytes=%d-", len(payload))}},
		{"partial longer than the file", append(bytes.Clone(payload), 1, 2, 3), int64(len(payload)), []string{""}},
		{"longer partial, size unknown (HTTP 416): restart", append(bytes.Clone(payload), 1), 0, []string{"bytes=300001-", ""}},
		{"partial with a wrong prefix: restart", append([]byte{0}, payload[1:200_000]...), int64(len(payload)), []string{"bytes=200000-", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := goodServer(t)
			c, _ := newCache(t)
			dir := filepath.Join(c.Root, "tiny-net")
			os.MkdirAll(dir, 0o755)
			if err := os.WriteFile(filepath.Join(dir, "model.safetensors.incomplete"), tt.partial, 0o644); err != nil {
				t.Fatal(err)
			}
			r := request(s.URL + "/f")
			r.Size = tt.size
			p, err := c.Pull(context.Background(), r)
			if err != nil {
				t.Fatal(err)
			}
			assertCached(t, c, p)
			if got := s.requests(); strings.Join(got, ",") != strings.Join(tt.wantRanges, ",") {
				t.Fatalf("Range headers %q, want %q", got, tt.wantRanges)
			}
		})
	}
}

func TestStallIsRetried(t *testing.T) {
	const cut = 50_000
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			w.Header().Set("Content-Length", fmt.Sprint(len(payload)))
			w.Write(payload[:cut])
			w.(http.Flusher).Flush()
			select { // hang until the client gives up
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		}
		serve(payload)(w, r, n)
	})
	c, warns := newCache(t)
	c.Stall = 200 * time.Millisecond
	p, err := c.Pull(context.Background(), request(s.URL+"/f"))
	if err != nil {
		t.Fatal(err)
	}
	assertCached(t, c, p)
	if got := s.requests(); len(got) != 2 || got[1] != fmt.Sprintf("bytes=%d-", cut) {
		t.Fatalf("Range headers %q, want a resume at %d", got, cut)
	}
	containsAll(t, "warnings", warns.String(), "stalled", "retry 1 of 2")
}

func TestCorruptCacheIsFetchedAgain(t *testing.T) {
	flipped := bytes.Clone(payload)
	flipped[0] ^= 1
	tests := []struct {
		name   string
		cached []byte
		want   string
	}{
		{"flipped bit", flipped, "sha256 " + sha(flipped) + ", expected " + payloadSHA},
		{"truncated", payload[:10], "10 bytes, expected 300000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := goodServer(t)
			c, warns := newCache(t)
			path, _ := c.Path("tiny-net", "model.safetensors")
			os.MkdirAll(filepath.Dir(path), 0o755)
			os.WriteFile(path, tt.cached, 0o644)
			p, err := c.Pull(context.Background(), request(s.URL+"/f"))
			if err != nil {
				t.Fatal(err)
			}
			assertCached(t, c, p)
			if s.count() != 1 {
				t.Fatalf("server saw %d requests, want 1", s.count())
			}
			containsAll(t, "warnings", warns.String(), "cached "+path+" is corrupt", tt.want, "fetching it again")
		})
	}
}

func TestConcurrentPulls(t *testing.T) {
	const pullers = 8
	progress := &syncBuffer{}
	release := make(chan struct{})
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		<-release // hold the download until every other puller waits
		serve(payload)(w, r, n)
	})
	c, _ := newCache(t)
	c.Progress = progress
	go func() {
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(progress.String(), "waiting for it") < pullers-1 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		close(release)
	}()
	errs := make(chan error, pullers)
	for i := 0; i < pullers; i++ {
		go func() {
			p, err := c.Pull(context.Background(), request(s.URL+"/f"))
			if err == nil && p != filepath.Join(c.Root, "tiny-net", "model.safetensors") {
				err = fmt.Errorf("path %s", p)
			}
			errs <- err
		}()
	}
	for i := 0; i < pullers; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if n := strings.Count(progress.String(), "waiting for it"); n != pullers-1 {
		t.Errorf("%d pulls waited for the lock, want %d", n, pullers-1)
	}
	if n := s.count(); n != 1 {
		t.Fatalf("server saw %d downloads, want 1", n)
	}
	assertCached(t, c, filepath.Join(c.Root, "tiny-net", "model.safetensors"))
}

func TestWaitForLockHonoursContext(t *testing.T) {
	c, _ := newCache(t)
	path, _ := c.Path("tiny-net", "model.safetensors")
	os.MkdirAll(filepath.Dir(path), 0o755)
	unlock, ok, err := lockPath(path + ".lock")
	if err != nil || !ok {
		t.Fatalf("lock: %v %v", ok, err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = c.Pull(ctx, request("http://127.0.0.1:1/never"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's deadline", err)
	}
	containsAll(t, "error", err.Error(), "waiting for the lock "+path+".lock")
}

func TestOffline(t *testing.T) {
	local := filepath.Join(t.TempDir(), "model.safetensors")
	os.WriteFile(local, payload, 0o644)
	mirror := t.TempDir()
	os.MkdirAll(filepath.Join(mirror, "tiny-net"), 0o755)
	os.WriteFile(filepath.Join(mirror, "tiny-net", "model.safetensors"), payload, 0o644)
	bundled := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(payload)), nil }

	tests := []struct {
		name    string
		mirror  string // "http" for the test server
		urls    func(srv string) []string
		bundled bool
		cached  bool
		wantErr []string
	}{
		{name: "http only: clear error", urls: func(s string) []string { return []string{s + "/f"} },
			wantErr: []string{"pull tiny-net/model.safetensors: not in the cache", "offline", "sslzoo pull tiny-net", "SSLZOO_OFFLINE", "1. url http://", "skipped: offline"}},
		{name: "nothing at all", wantErr: []string{"not in the cache", "sslzoo pull tiny-net"}},
		{name: "file URL", urls: func(s string) []string { return []string{s + "/f", fileURL(local)} }},
		{name: "file mirror", mirror: fileURL(mirror), urls: func(s string) []string { return []string{s + "/f"} }},
		{name: "http mirror skipped, bundled used", mirror: "http", bundled: true},
		{name: "already cached", urls: func(s string) []string { return []string{s + "/f"} }, cached: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := goodServer(t)
			c, warns := newCache(t)
			c.Offline = true
			c.Mirror = tt.mirror
			if tt.mirror == "http" {
				c.Mirror = s.URL + "/mirror"
			}
			r := request()
			if tt.urls != nil {
				r.URLs = tt.urls(s.URL)
			}
			if tt.bundled {
				r.Bundled = bundled
			}
			if tt.cached {
				p, _ := c.Path(r.Name, r.File)
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, payload, 0o644)
			}
			p, err := c.Pull(context.Background(), r)
			if s.count() != 0 {
				t.Fatalf("offline pull sent %d requests to the server", s.count())
			}
			if tt.wantErr != nil {
				if err == nil {
					t.Fatal("offline pull of an uncached file succeeded")
				}
				if !errors.Is(err, ErrOffline) && len(r.URLs) > 0 {
					t.Errorf("errors.Is(err, ErrOffline) is false for %v", err)
				}
				containsAll(t, "error", err.Error(), tt.wantErr...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			assertCached(t, c, p)
			if strings.Contains(warns.String(), "trying the next source") {
				t.Errorf("skipping a network source offline should not warn: %s", warns)
			}
		})
	}
}

func TestSourceOrder(t *testing.T) {
	mirrorDir := t.TempDir()
	os.MkdirAll(filepath.Join(mirrorDir, "tiny-net"), 0o755)
	os.WriteFile(filepath.Join(mirrorDir, "tiny-net", "model.safetensors"), payload, 0o644)
	missing := func(w http.ResponseWriter, r *http.Request, _ int) { http.NotFound(w, r) }

	tests := []struct {
		name        string
		mirror      string // "good" or "missing" for a test server, else used as is
		url         string // "good" or "missing"
		bundled     bool
		noBundled   bool
		wantMirror  int // requests the mirror server gets
		wantURL     int
		wantBundled bool
		wantErr     string
	}{
		{name: "mirror first", mirror: "good", url: "good", wantMirror: 1, wantURL: 0},
		{name: "mirror misses, url next", mirror: "missing", url: "good", wantMirror: 1, wantURL: 1},
		{name: "file mirror", mirror: fileURL(mirrorDir), url: "good", wantURL: 0},
		{name: "everything misses, bundled last", mirror: "missing", url: "missing", bundled: true, wantMirror: 1, wantURL: 1, wantBundled: true},
		{name: "NoBundled", mirror: "missing", url: "missing", bundled: true, noBundled: true, wantMirror: 1, wantURL: 1, wantErr: "2 tried"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pick := func(kind string) func(http.ResponseWriter, *http.Request, int) {
				if kind == "missing" {
					return missing
				}
				return serve(payload)
			}
			ms := newServer(t, pick(tt.mirror))
			us := newServer(t, pick(tt.url))
			c, _ := newCache(t)
			c.Mirror = tt.mirror
			if tt.mirror == "good" || tt.mirror == "missing" {
				c.Mirror = ms.URL + "/zoo/"
			}
			r := request(us.URL + "/f")
			usedBundled := false
			if tt.bundled {
				r.Bundled = func() (io.ReadCloser, error) {
					usedBundled = true
					return io.NopCloser(bytes.NewReader(payload)), nil
				}
			}
			r.NoBundled = tt.noBundled
			srcs, err := c.Sources(r)
			if err != nil {
				t.Fatal(err)
			}
			wantKinds := []string{KindMirror, KindURL}
			if tt.bundled && !tt.noBundled {
				wantKinds = append(wantKinds, KindBundled)
			}
			var kinds []string
			for _, s := range srcs {
				kinds = append(kinds, s.Kind)
			}
			if strings.Join(kinds, ",") != strings.Join(wantKinds, ",") {
				t.Fatalf("sources %v, want kinds %v", srcs, wantKinds)
			}
			p, err := c.Pull(context.Background(), r)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one with %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "bundled") {
					t.Fatalf("NoBundled pull mentions the bundled copy: %v", err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				assertCached(t, c, p)
			}
			if ms.count() != tt.wantMirror || us.count() != tt.wantURL {
				t.Fatalf("mirror got %d requests, url %d; want %d and %d", ms.count(), us.count(), tt.wantMirror, tt.wantURL)
			}
			if got := ms.urlPaths(); tt.wantMirror > 0 && got[0] != "/zoo/tiny-net/model.safetensors" {
				t.Fatalf("mirror asked for %s, want /zoo/tiny-net/model.safetensors", got[0])
			}
			if usedBundled != tt.wantBundled {
				t.Fatalf("bundled used: %v, want %v", usedBundled, tt.wantBundled)
			}
		})
	}
}

func TestFileSources(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.bin")
	os.WriteFile(good, payload, 0o644)
	short := filepath.Join(dir, "short.bin")
	os.WriteFile(short, payload[:100], 0o644)
	tests := []struct {
		name    string
		url     string
		wantErr string
	}{
		{name: "absolute path", url: fileURL(good)},
		{name: "localhost", url: "file://localhost" + filepath.ToSlash(good)},
		{name: "missing", url: fileURL(filepath.Join(dir, "nope")), wantErr: "no such file"},
		{name: "a folder", url: fileURL(dir), wantErr: "is not a regular file"},
		{name: "wrong size", url: fileURL(short), wantErr: "the source has 100 bytes, expected 300000"},
		{name: "host instead of path", url: "file://relative/path", wantErr: "needs an absolute path"},
		{name: "unsupported scheme", url: "ftp://example.invalid/f", wantErr: `unsupported scheme "ftp"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newCache(t)
			p, err := c.Pull(context.Background(), request(tt.url))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one with %q", err, tt.wantErr)
				}
				assertOnly(t, filepath.Join(c.Root, "tiny-net"))
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			assertCached(t, c, p)
		})
	}
}

func TestBundled(t *testing.T) {
	wrong := bytes.Clone(payload)
	wrong[len(wrong)-1]++
	tests := []struct {
		name    string
		open    func() (io.ReadCloser, error)
		wantErr []string
	}{
		{name: "good", open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(payload)), nil }},
		{name: "wrong content", open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(wrong)), nil },
			wantErr: []string{"bundled: sha256 mismatch", "expected " + payloadSHA, "got " + sha(wrong)}},
		{name: "short", open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(payload[:5])), nil },
			wantErr: []string{"bundled: truncated", "after 5 of 300000 bytes"}},
		{name: "opener fails", open: func() (io.ReadCloser, error) { return nil, errors.New("not compiled in") },
			wantErr: []string{"bundled: not compiled in"}},
		{name: "opener returns nothing", open: func() (io.ReadCloser, error) { return nil, nil },
			wantErr: []string{"bundled: the bundled opener returned no reader"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newCache(t)
			r := request()
			r.Bundled = tt.open
			p, err := c.Pull(context.Background(), r)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatal("pull succeeded")
				}
				containsAll(t, "error", err.Error(), tt.wantErr...)
				assertOnly(t, filepath.Join(c.Root, "tiny-net"))
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			assertCached(t, c, p)
		})
	}
}
