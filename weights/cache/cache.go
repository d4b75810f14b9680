// Package cache downloads the files behind `sslzoo pull NAME` into the
// sslzoo cache, at ROOT/NAME/FILE, and keeps them honest.
//
// A file is pinned by its sha256 (and its size when known); nothing else is
// trusted. Pull tries, in order, $SSLZOO_MIRROR/NAME/FILE, the entry's own
// URLs and a copy bundled in the binary. An HTTP download goes to
// FILE.incomplete, resumes with a Range request after a dropped connection,
// retries with exponential backoff, and becomes FILE only once verified,
// synced and renamed, so FILE is never half-written. A lock file, FILE.lock,
// makes concurrent pulls of one file safe across goroutines and processes:
// one downloads, the others wait and then find the verified file. A cached
// file is hashed again on every Pull (about a second per GB; correctness
// over speed) and fetched again, with a warning, when it no longer matches.
//
// The cache folder comes from internal/cachedir: $SSLZOO_CACHE, else
// $XDG_CACHE_HOME/sslzoo, else ~/.cache/sslzoo.
package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sslzoo/sslzoo/internal/cachedir"
	"github.com/sslzoo/sslzoo/internal/filehash"
	"github.com/sslzoo/sslzoo/internal/safepath"
)

// Environment variables New reads (besides cachedir.Env, SSLZOO_CACHE).
const (
	// EnvMirror is a base URL (http://, https:// or file://) laid out as
	// BASE/NAME/FILE, tried before an entry's own URLs.
	EnvMirror = "SSLZOO_MIRROR"
	// EnvOffline set to 1 (or true, yes, on) forbids network access.
	EnvOffline = "SSLZOO_OFFLINE"
)

// Defaults New fills in. A Cache built as a literal gets exactly its
// fields: zero Retries means one attempt per source, zero Backoff no wait
// between attempts, zero Stall no stall detection.
const (
	DefaultRetries = 3
	DefaultBackoff = 500 * time.Millisecond
	DefaultStall   = time.Minute
)

// maxBackoff caps the doubling, so a large Retries does not wait for hours.
const maxBackoff = 30 * time.Second

// Kinds of Source, in the order Pull tries them.
const (
	KindMirror  = "mirror"
	KindURL     = "url"
	KindBundled = "bundled"
)

// Source is one place a file can come from. URL is empty for the bundled
// copy.
type Source struct {
	Kind string
	URL  string
}

// String names the source for messages, with any password in the URL
// hidden.
func (s Source) String() string {
	if s.URL == "" {
		return s.Kind
	}
	if u, err := url.Parse(s.URL); err == nil {
		return s.Kind + " " + u.Redacted()
	}
	return s.Kind + " " + s.URL
}

// Request describes one file to pull.
type Request struct {
	Name string // the entry, e.g. "resnet18-simclr-fmnist": ROOT/Name
	File string // the file in it, e.g. "model.safetensors": ROOT/Name/File
	// Size in bytes; 0 when unknown. When known, a source that announces or
	// sends another size is refused before the checksum is even computed.
	Size int64
	// SHA256 pins the content: 64 hex digits, or a prefix of at least 8
	// for files whose authors publish only that (torchvision's names).
	// Required unless Unpinned.
	SHA256 string
	// Unpinned allows an empty SHA256, for published files whose authors
	// give no checksum: the file is taken as it comes, and Warn reports
	// its digest so the caller can pin it.
	Unpinned bool
	// URLs are http://, https:// or file:// addresses of the file itself,
	// tried in order after the mirror.
	URLs []string
	// Bundled, when not nil, opens a copy shipped inside the binary; it is
	// the last source and it is checked like any other.
	Bundled func() (io.ReadCloser, error)
	// NoBundled skips Bundled, e.g. to prove that a download works.
	NoBundled bool
}

// Cache is the download cache. Its methods are safe for concurrent use;
// other processes using the same Root are coordinated through lock files.
type Cache struct {
	// Root is the cache folder; it is created when needed.
	Root string
	// Offline forbids network access: only file:// sources, the cache and
	// the bundled copy are used.
	Offline bool
	// Mirror is a base URL laid out as Mirror/NAME/FILE, tried first.
	Mirror string
	// Client does the HTTP requests; nil means a client with sensible
	// timeouts and the environment's proxy settings.
	Client *http.Client
	// Progress receives a progress bar per download, and a line when a
	// pull waits for another one; nil shows nothing.
	Progress io.Writer
	// Retries is how many more times an HTTP source is tried after a
	// transient failure (dropped connection, 5xx, stall), resuming where
	// the last attempt stopped.
	Retries int
	// Backoff is the wait before the first retry; it doubles each time.
	Backoff time.Duration
	// Stall aborts an attempt (then retried) when no byte arrives for this
	// long, headers included.
	Stall time.Duration
	// Warn receives one-line warnings: a corrupt cached file, a failed
	// source when another one follows, a retry. Nil writes them to
	// Progress, or drops them when that is nil too.
	Warn func(string)

	// wrapWriter, when set, wraps the writer of every download, so that
	// tests can make the disk fail (a full disk, an I/O error).
	wrapWriter func(io.Writer) io.Writer
}

// New returns a Cache configured from the environment: the root from
// internal/cachedir ($SSLZOO_CACHE, $XDG_CACHE_HOME, $HOME), $SSLZOO_MIRROR
// and $SSLZOO_OFFLINE, with the default retry policy. Progress and Warn are
// left for the caller.
func New() (*Cache, error) {
	root, err := cachedir.Root()
	if err != nil {
		return nil, err
	}
	offline, err := parseBool(os.Getenv(EnvOffline))
	if err != nil {
		return nil, fmt.Errorf("%s=%q: %w", EnvOffline, os.Getenv(EnvOffline), err)
	}
	mirror := os.Getenv(EnvMirror)
	if mirror != "" {
		if _, err := parseSourceURL(mirror); err != nil {
			return nil, fmt.Errorf("%s=%q: %w", EnvMirror, mirror, err)
		}
	}
	return &Cache{
		Root:    root,
		Offline: offline,
		Mirror:  mirror,
		Retries: DefaultRetries,
		Backoff: DefaultBackoff,
		Stall:   DefaultStall,
	}, nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "0", "false", "no", "off":
		return false, nil
	case "1", "true", "yes", "on":
		return true, nil
	}
	return false, errors.New("want 1 or 0")
}

// Path returns where name/file is (or would be) cached, after checking that
// both are plain names and that no symlink under the root (ROOT/NAME, or
// ROOT/NAME/FILE) leads out of it, since Pull writes there.
func (c *Cache) Path(name, file string) (string, error) {
	root, err := c.root()
	if err != nil {
		return "", err
	}
	if err := checkName("name", name); err != nil {
		return "", err
	}
	if err := checkName("file", file); err != nil {
		return "", err
	}
	return safepath.Join(root, filepath.Join(name, file))
}

func (c *Cache) root() (string, error) {
	if c.Root == "" {
		return "", errors.New("cache: Root is empty; build the Cache with cache.New or set Root")
	}
	return c.Root, nil
}

// Sources lists where Pull would look for r, in order, whether or not it is
// cached and whether or not the cache is offline.
func (c *Cache) Sources(r Request) ([]Source, error) {
	if err := checkName("name", r.Name); err != nil {
		return nil, err
	}
	if err := checkName("file", r.File); err != nil {
		return nil, err
	}
	var s []Source
	if c.Mirror != "" {
		u, err := url.JoinPath(c.Mirror, r.Name, r.File)
		if err != nil {
			return nil, fmt.Errorf("mirror %q: %w", c.Mirror, err)
		}
		s = append(s, Source{Kind: KindMirror, URL: u})
	}
	for _, u := range r.URLs {
		s = append(s, Source{Kind: KindURL, URL: u})
	}
	if r.Bundled != nil && !r.NoBundled {
		s = append(s, Source{Kind: KindBundled})
	}
	return s, nil
}

// Pull makes sure ROOT/NAME/FILE holds the file r pins and returns its
// path. A cached copy is verified first (and replaced, with a warning, when
// it does not match); otherwise the sources are tried in order. A failure of
// the cache folder itself (read-only, full) stops at once with a *DirError
// and leaves no partial file; when every source fails the error is a
// *PullError that lists each one.
func (c *Cache) Pull(ctx context.Context, r Request) (string, error) {
	entry := r.Name + "/" + r.File
	final, err := c.Path(r.Name, r.File)
	if err != nil {
		return "", fmt.Errorf("pull %s: %w", entry, err)
	}
	if r.SHA256 != "" || !r.Unpinned {
		if r.SHA256, err = checkSHA256(r.SHA256); err != nil {
			return "", fmt.Errorf("pull %s: %w", entry, err)
		}
	}
	if r.Size < 0 {
		return "", fmt.Errorf("pull %s: size %d is negative", entry, r.Size)
	}
	sources, err := c.Sources(r)
	if err != nil {
		return "", fmt.Errorf("pull %s: %w", entry, err)
	}

	// Most pulls find the file; check it without the lock (FILE only ever
	// appears by rename, complete), and take the lock only to change it.
	if ok, _, err := checkCached(final, r); err != nil {
		return "", fmt.Errorf("pull %s: %w", entry, err)
	} else if ok {
		return final, nil
	}

	if len(sources) == 0 {
		return "", &PullError{Name: r.Name, File: r.File, Path: final, Offline: c.Offline}
	}
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("pull %s: %w", entry, &DirError{Dir: dir, Err: err})
	}
	unlock, err := acquire(ctx, final+lockSuffix, func() {
		c.info(fmt.Sprintf("another pull is downloading %s; waiting for it (lock %s)", entry, final+lockSuffix))
	})
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("pull %s: waiting for the lock %s: %w", entry, final+lockSuffix, err)
		}
		return "", fmt.Errorf("pull %s: %w", entry, &DirError{Dir: dir, Err: err})
	}
	defer unlock()

	// Whoever held the lock before us may have just finished the job.
	ok, why, err := checkCached(final, r)
	if err != nil {
		return "", fmt.Errorf("pull %s: %w", entry, err)
	}
	if ok {
		return final, nil
	}
	if why != "" {
		c.warn(fmt.Sprintf("cached %s is corrupt (%s); fetching it again", final, why))
		if err := os.Remove(final); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("pull %s: %w", entry, &DirError{Dir: dir, Err: err})
		}
	}

	pe := &PullError{Name: r.Name, File: r.File, Path: final, Offline: c.Offline}
	inc := final + incompleteSuffix
	for i, src := range sources {
		err := c.fromSource(ctx, src, &r, inc)
		if err == nil {
			if err := os.Rename(inc, final); err != nil {
				os.Remove(inc)
				return "", fmt.Errorf("pull %s: %w", entry, &DirError{Dir: dir, Err: err})
			}
			syncDir(dir)
			return final, nil
		}
		if isDirError(err) {
			return "", fmt.Errorf("pull %s: %w", entry, err)
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("pull %s from %s: %w", entry, src, ctx.Err())
		}
		se := &SourceError{Source: src, Err: err}
		pe.Failures = append(pe.Failures, se)
		if i+1 < len(sources) && !errors.Is(err, ErrOffline) {
			c.warn(fmt.Sprintf("pull %s: %v; trying the next source", entry, se))
		}
	}
	return "", pe
}

// checkCached reports whether path holds r's content. When it exists but
// does not match, why says how; a read failure is an error.
func checkCached(path string, r Request) (ok bool, why string, err error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		// Not there; with ENOTDIR, MkdirAll gives the clearer error.
		return false, "", nil
	}
	if err != nil {
		return false, "", &DirError{Dir: filepath.Dir(path), Err: err}
	}
	if !st.Mode().IsRegular() {
		return false, "", fmt.Errorf("%s is not a regular file; remove it", path)
	}
	if r.Size > 0 && st.Size() != r.Size {
		return false, fmt.Sprintf("%d bytes, expected %d", st.Size(), r.Size), nil
	}
	got, err := filehash.SHA256(path)
	if err != nil {
		return false, "", &DirError{Dir: filepath.Dir(path), Err: err}
	}
	if !digestMatches(got, r.SHA256) {
		return false, fmt.Sprintf("sha256 %s, expected %s", got, r.SHA256), nil
	}
	return true, "", nil
}

// syncDir makes a rename durable. Best effort: some filesystems refuse to
// sync a directory, and the file itself is already synced.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

func (c *Cache) warn(msg string) {
	switch {
	case c.Warn != nil:
		c.Warn(msg)
	case c.Progress != nil:
		fmt.Fprintln(c.Progress, "warning: "+msg)
	}
}

func (c *Cache) info(msg string) {
	if c.Progress != nil {
		fmt.Fprintln(c.Progress, msg)
	}
}

// backoff is the wait before retry number n (1 for the first retry).
func backoff(base time.Duration, n int) time.Duration {
	if base <= 0 || n <= 0 {
		return 0
	}
	d := base
	for i := 1; i < n; i++ {
		d *= 2
		if d >= maxBackoff {
			return maxBackoff
		}
	}
	return min(d, maxBackoff)
}
