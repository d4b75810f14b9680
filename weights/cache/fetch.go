package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/schollz/progressbar/v3"
)

var defaultClient = &http.Client{Transport: defaultTransport()}

func defaultTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// Without a Stall watchdog this is what stops a server that accepts
	// the connection and then says nothing.
	t.ResponseHeaderTimeout = time.Minute
	return t
}

var errStalled = errors.New("stalled")

// parseSourceURL accepts http://, https:// and file:// URLs; for file:// it
// wants an absolute path and no host but localhost.
func parseSourceURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return nil, fmt.Errorf("%s has no host", u.Redacted())
		}
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("%s: a file:// URL needs an absolute path (file:///path), not host %q", raw, u.Host)
		}
		if !filepath.IsAbs(filepath.FromSlash(u.Path)) {
			return nil, fmt.Errorf("%s: a file:// URL needs an absolute path", raw)
		}
	default:
		return nil, fmt.Errorf("%s: unsupported scheme %q; use http://, https:// or file://", u.Redacted(), u.Scheme)
	}
	return u, nil
}

// fromSource fetches r from src into inc, verified. HTTP sources get
// Retries more attempts after a transient failure; each resumes from what
// inc already holds. file:// and bundled copies are local, so one fresh
// copy is all there is to try.
func (c *Cache) fromSource(ctx context.Context, src Source, r *Request, inc string) error {
	var u *url.URL
	if src.Kind != KindBundled {
		var err error
		if u, err = parseSourceURL(src.URL); err != nil {
			return err
		}
		if c.Offline && u.Scheme != "file" {
			return fmt.Errorf("skipped: %w", ErrOffline)
		}
	}
	attempts := 1
	if u != nil && u.Scheme != "file" && c.Retries > 0 {
		attempts += c.Retries
	}
	var err error
	for a := 0; a < attempts; a++ {
		if a > 0 {
			d := backoff(c.Backoff, a)
			c.warn(fmt.Sprintf("pull %s/%s from %s: %v; retry %d of %d in %s", r.Name, r.File, src, err, a, attempts-1, d))
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		if u == nil {
			err = c.copyFrom(ctx, r, inc, func() (opened, error) { return openBundled(r) })
		} else if u.Scheme == "file" {
			err = c.copyFrom(ctx, r, inc, func() (opened, error) { return openFile(u) })
		} else {
			err = c.download(ctx, u, r, inc)
		}
		if err == nil || !isTransient(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// opened is a source's body: the bytes of the file from offset start on.
type opened struct {
	body  io.ReadCloser
	start int64
	total int64 // the whole file's size as the source reports it; -1 unknown
}

func openBundled(r *Request) (opened, error) {
	rc, err := r.Bundled()
	if err != nil {
		return opened{}, err
	}
	if rc == nil {
		return opened{}, errors.New("the bundled opener returned no reader")
	}
	return opened{body: rc, total: -1}, nil
}

func openFile(u *url.URL) (opened, error) {
	p := filepath.FromSlash(u.Path)
	f, err := os.Open(p)
	if err != nil {
		return opened{}, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return opened{}, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return opened{}, fmt.Errorf("%s is not a regular file", p)
	}
	return opened{body: f, total: st.Size()}, nil
}

// copyFrom copies a local source into inc from the start.
func (c *Cache) copyFrom(ctx context.Context, r *Request, inc string, open func() (opened, error)) error {
	o, err := open()
	if err != nil {
		return err
	}
	defer o.body.Close()
	return c.receive(ctx, r, inc, o, false, nil)
}

// download does one HTTP attempt, resuming from inc's length.
func (c *Cache) download(ctx context.Context, u *url.URL, r *Request, inc string) error {
	offset, err := partialSize(inc)
	if err != nil {
		return err
	}
	if r.Size > 0 && offset > r.Size {
		offset = 0 // longer than the file: not ours to resume
	}
	if r.Size > 0 && offset == r.Size {
		// A complete earlier transfer that died before its rename.
		if ok, _, _ := checkCached(inc, *r); ok {
			return nil
		}
		offset = 0
	}

	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	touch := func() {}
	if c.Stall > 0 {
		watchdog := time.AfterFunc(c.Stall, func() { cancel(errStalled) })
		defer watchdog.Stop()
		touch = func() { watchdog.Reset(c.Stall) }
	}
	stalled := func(err error) error {
		if context.Cause(actx) == errStalled {
			return transient("no data for %s (stalled): %v", c.Stall, err)
		}
		return err
	}

	o, err := c.openHTTP(actx, u, offset)
	if errors.Is(err, errRangeNotSatisfiable) {
		// With an unknown size the partial may already be the whole file.
		if ok, _, _ := checkCached(inc, *r); ok {
			return nil
		}
		if rerr := os.Remove(inc); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return &DirError{Dir: filepath.Dir(inc), Err: rerr}
		}
		return transient("the server refused to resume at byte %d (HTTP 416); starting again", offset)
	}
	if err != nil {
		return stalled(err)
	}
	defer o.body.Close()
	return stalled(c.receive(actx, r, inc, o, true, touch))
}

var errRangeNotSatisfiable = errors.New("HTTP 416 Range Not Satisfiable")

func (c *Cache) openHTTP(ctx context.Context, u *url.URL, offset int64) (opened, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return opened{}, err
	}
	req.Header.Set("User-Agent", "sslzoo")
	// Byte offsets must count the file itself, not a compressed transfer.
	req.Header.Set("Accept-Encoding", "identity")
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	client := c.Client
	if client == nil {
		client = defaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return opened{}, transientError{err}
	}
	switch resp.StatusCode {
	case http.StatusOK:
		// Also the answer of a server that ignores Range: start again.
		return opened{body: resp.Body, total: resp.ContentLength}, nil
	case http.StatusPartialContent:
		start, end, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err == nil && start != offset {
			err = fmt.Errorf("asked for bytes from %d, got a range from %d", offset, start)
		}
		if err == nil && resp.ContentLength >= 0 && resp.ContentLength != end-start+1 {
			err = fmt.Errorf("Content-Range %q but Content-Length %d", resp.Header.Get("Content-Range"), resp.ContentLength)
		}
		if err == nil && total >= 0 && end != total-1 {
			err = fmt.Errorf("asked for bytes %d- of %d, got up to %d only", offset, total, end)
		}
		if err != nil {
			resp.Body.Close()
			return opened{}, fmt.Errorf("HTTP 206 with a bad range: %w", err)
		}
		return opened{body: resp.Body, start: start, total: total}, nil
	case http.StatusRequestedRangeNotSatisfiable:
		resp.Body.Close()
		if offset > 0 {
			return opened{}, errRangeNotSatisfiable
		}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	err = fmt.Errorf("HTTP %s", resp.Status)
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout {
		return opened{}, transientError{err}
	}
	return opened{}, err
}

var contentRange = regexp.MustCompile(`^bytes ([0-9]+)-([0-9]+)/([0-9]+|\*)$`)

// parseContentRange reads "bytes START-END/TOTAL" (TOTAL may be *).
func parseContentRange(s string) (start, end, total int64, err error) {
	m := contentRange.FindStringSubmatch(s)
	if m == nil {
		return 0, 0, 0, fmt.Errorf("Content-Range %q is not bytes START-END/TOTAL", s)
	}
	start, err1 := strconv.ParseInt(m[1], 10, 64)
	end, err2 := strconv.ParseInt(m[2], 10, 64)
	total = -1
	var err3 error
	if m[3] != "*" {
		total, err3 = strconv.ParseInt(m[3], 10, 64)
	}
	if err := errors.Join(err1, err2, err3); err != nil {
		return 0, 0, 0, fmt.Errorf("Content-Range %q: %w", s, err)
	}
	if end < start || total >= 0 && end >= total {
		return 0, 0, 0, fmt.Errorf("Content-Range %q is inconsistent", s)
	}
	return start, end, total, nil
}

// partialSize is the length of an earlier, interrupted download; anything
// at inc that is not a regular file is removed.
func partialSize(inc string) (int64, error) {
	st, err := os.Lstat(inc)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err == nil && st.Mode().IsRegular() {
		return st.Size(), nil
	}
	if err == nil {
		err = os.Remove(inc)
	}
	if err != nil {
		return 0, &DirError{Dir: filepath.Dir(inc), Err: err}
	}
	return 0, nil
}

// receive writes o's body into inc at o.start, keeping what is before it,
// and checks the size and sha256 of the whole. When resumable, a broken
// transfer leaves inc for the next attempt to resume; otherwise, and after
// bad content or a local write failure, inc is removed. touch, when not
// nil, is called whenever bytes arrive.
func (c *Cache) receive(ctx context.Context, r *Request, inc string, o opened, resumable bool, touch func()) (err error) {
	if r.Size > 0 && o.total >= 0 && o.total != r.Size {
		return fmt.Errorf("%w: the source has %d bytes, expected %d", ErrChecksum, o.total, r.Size)
	}
	expect := o.total
	if r.Size > 0 {
		expect = r.Size
	}
	dir := filepath.Dir(inc)
	local := func(err error) error { return &DirError{Dir: dir, Err: err} }

	f, err := os.OpenFile(inc, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return local(err)
	}
	keep := false // true leaves inc for a resume
	defer func() {
		if f != nil {
			f.Close()
		}
		if !keep {
			os.Remove(inc)
		}
	}()
	h := sha256.New()
	if o.start > 0 {
		// A resume: the checksum covers the bytes already there too.
		if _, err := io.CopyN(h, f, o.start); err != nil {
			return local(fmt.Errorf("read %s: %w", inc, err))
		}
	}
	if err := f.Truncate(o.start); err != nil {
		return local(err)
	}
	if _, err := f.Seek(o.start, io.SeekStart); err != nil {
		return local(err)
	}

	bar := c.newBar(r.Name+"/"+r.File, expect, o.start)
	var w io.Writer = f
	if c.wrapWriter != nil {
		w = c.wrapWriter(f)
	}
	limit := int64(-1)
	if expect >= 0 {
		limit = expect - o.start
	}
	got, rerr, werr := copyChecked(ctx, w, h, bar, o.body, limit, touch)
	got += o.start
	switch {
	case werr != nil:
		bar.fail()
		return local(werr)
	case errors.Is(rerr, ErrTooLarge):
		bar.fail()
		return fmt.Errorf("%w: more than the expected %d bytes", ErrTooLarge, expect)
	case rerr != nil:
		bar.fail()
		keep = resumable
		if ctx.Err() != nil {
			return rerr
		}
		return transient("transfer broke after %d bytes: %v", got, rerr)
	case expect >= 0 && got < expect:
		bar.fail()
		keep = resumable
		return transient("truncated: the transfer ended after %d of %d bytes", got, expect)
	}
	if err := f.Sync(); err != nil {
		bar.fail()
		return local(err)
	}
	cerr := f.Close()
	f = nil
	if cerr != nil {
		bar.fail()
		return local(cerr)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if r.SHA256 == "" {
		c.warn(fmt.Sprintf("%s/%s has no published checksum; took it as downloaded, sha256 %s", r.Name, r.File, sum))
	}
	if !digestMatches(sum, r.SHA256) {
		bar.fail()
		if o.start > 0 {
			// The bytes kept from before may be the bad ones; start again.
			return transientError{fmt.Errorf("%w after resuming at byte %d: expected %s, got %s; starting again", ErrChecksum, o.start, r.SHA256, sum)}
		}
		return fmt.Errorf("%w: expected %s, got %s", ErrChecksum, r.SHA256, sum)
	}
	bar.done()
	keep = true
	return nil
}

// copyChecked copies body to w and h, refusing more than limit bytes
// (limit < 0: no limit). It keeps read and write failures apart: one is
// the source's fault, the other the cache folder's.
func copyChecked(ctx context.Context, w io.Writer, h hash.Hash, bar *bar, body io.Reader, limit int64, touch func()) (n int64, rerr, werr error) {
	if touch == nil {
		touch = func() {}
	}
	touch() // hashing a long partial file is not a stall
	buf := make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return n, err, nil
		}
		nr, er := body.Read(buf)
		if nr > 0 {
			touch()
			if limit >= 0 && n+int64(nr) > limit {
				return n, ErrTooLarge, nil
			}
			nw, ew := w.Write(buf[:nr])
			if ew == nil && nw != nr {
				ew = io.ErrShortWrite
			}
			if ew != nil {
				return n, nil, ew
			}
			h.Write(buf[:nr])
			n += int64(nr)
			bar.add(nr)
		}
		if er == io.EOF {
			return n, nil, nil
		}
		if er != nil {
			return n, er, nil
		}
	}
}

// bar wraps progressbar; a nil *bar shows nothing.
type bar struct{ pb *progressbar.ProgressBar }

func (c *Cache) newBar(desc string, total, start int64) *bar {
	if c.Progress == nil {
		return nil
	}
	if total <= 0 {
		total = -1 // unknown: a spinner with a byte count
	}
	w := c.Progress
	pb := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		// No background redraw goroutine, which would outlive a failed bar.
		progressbar.OptionSetSpinnerChangeInterval(0),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
	if start > 0 {
		pb.Add64(start)
	}
	return &bar{pb}
}

func (b *bar) add(n int) {
	if b != nil {
		b.pb.Add(n)
	}
}

func (b *bar) done() {
	if b != nil {
		b.pb.Finish()
	}
}

func (b *bar) fail() {
	if b != nil {
		b.pb.Exit()
	}
}
