// Package loadgen drives an HTTP endpoint with closed-loop clients: each
// of N clients sends one request, waits for its answer, and sends the
// next, for a fixed time. It records every latency, so that percentiles
// are exact rather than estimated.
package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Request is what every client sends, again and again.
type Request struct {
	URL    string
	Header http.Header
	Body   []byte
}

// Result is one run's tally.
type Result struct {
	Requests  int // answered with the expected status and a body that checked
	Errors    int
	FirstErr  string
	Elapsed   time.Duration
	latencies []time.Duration // sorted
}

// RPS is the answered requests per second.
func (r Result) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// Percentile is the latency below which a fraction q of the answered
// requests fell (nearest rank).
func (r Result) Percentile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(q*float64(len(r.latencies))+0.5) - 1
	return r.latencies[min(max(i, 0), len(r.latencies)-1)]
}

// Run has concurrency clients send req for d (or until ctx ends). check,
// when set, vets each 200 answer's body; any other status is an error.
func Run(ctx context.Context, req Request, concurrency int, d time.Duration, check func(body []byte) error) (Result, error) {
	if concurrency < 1 {
		return Result{}, fmt.Errorf("loadgen: concurrency %d: want >= 1", concurrency)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency,
		DisableCompression: true}}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu  sync.Mutex
		res Result
		wg  sync.WaitGroup
	)
	start := time.Now()
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			ok, bad, first := 0, 0, ""
			buf := new(bytes.Buffer)
			for ctx.Err() == nil {
				t0 := time.Now()
				err := send(ctx, client, req, buf, check)
				if ctx.Err() != nil {
					break // cut off by the end of the run, not a failure
				}
				if err != nil {
					bad++
					if first == "" {
						first = err.Error()
					}
					continue
				}
				ok++
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			res.Requests += ok
			res.Errors += bad
			if res.FirstErr == "" {
				res.FirstErr = first
			}
			res.latencies = append(res.latencies, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	slices.Sort(res.latencies)
	return res, nil
}

func send(ctx context.Context, client *http.Client, req Request, buf *bytes.Buffer, check func([]byte) error) error {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, req.URL, bytes.NewReader(req.Body))
	if err != nil {
		return err
	}
	for k, v := range req.Header {
		hr.Header[k] = v
	}
	resp, err := client.Do(hr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	buf.Reset()
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %.200s", resp.StatusCode, buf.Bytes())
	}
	if check != nil {
		return check(buf.Bytes())
	}
	return nil
}

// Merge adds another run of the same load to r (rounds of one cell).
func (r Result) Merge(o Result) Result {
	out := Result{Requests: r.Requests + o.Requests, Errors: r.Errors + o.Errors, FirstErr: r.FirstErr, Elapsed: r.Elapsed + o.Elapsed}
	if out.FirstErr == "" {
		out.FirstErr = o.FirstErr
	}
	out.latencies = append(slices.Clone(r.latencies), o.latencies...)
	slices.Sort(out.latencies)
	return out
}

// Timed measures fn run back to back for d by n goroutines at once, as a
// Result, for in-process baselines beside an HTTP run.
func Timed(ctx context.Context, d time.Duration, n int, fn func() error) Result {
	var (
		mu  sync.Mutex
		res Result
		wg  sync.WaitGroup
	)
	start := time.Now()
	for range max(n, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine Result
			for ctx.Err() == nil && time.Since(start) < d {
				t0 := time.Now()
				if err := fn(); err != nil {
					mine.Errors++
					if mine.FirstErr == "" {
						mine.FirstErr = err.Error()
					}
					continue
				}
				mine.Requests++
				mine.latencies = append(mine.latencies, time.Since(t0))
			}
			mu.Lock()
			res = res.Merge(mine)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res
}
