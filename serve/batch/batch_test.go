package batch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// req is a test request: an id and how many rows it has.
type req struct{ id, rows int }

// recorder is a run function that keeps every batch it saw and answers
// each request with its own id times ten.
type recorder struct {
	mu      sync.Mutex
	batches [][]req
	gate    chan struct{} // when set, each run waits for a value on it
	entered atomic.Int32  // runs that have started
}

func (r *recorder) run(items []req) ([]int, error) {
	r.entered.Add(1)
	if r.gate != nil {
		<-r.gate
	}
	r.mu.Lock()
	r.batches = append(r.batches, append([]req(nil), items...))
	r.mu.Unlock()
	out := make([]int, len(items))
	for i, it := range items {
		out[i] = it.id * 10
	}
	return out, nil
}

func (r *recorder) seen() [][]req {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]req(nil), r.batches...)
}

func newBatcher(t *testing.T, cfg Config, run Func[req, int]) *Batcher[req, int] {
	t.Helper()
	b, err := New(cfg, run)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// waitLen waits until n requests are queued, so that the order they
// entered the queue is known.
func waitLen(t *testing.T, b *Batcher[req, int], n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); b.Len() != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("queue holds %d requests, want %d", b.Len(), n)
		}
	}
}

type answer struct {
	v   int
	err error
}

// submitAsync submits r and returns where its answer will arrive.
func submitAsync(ctx context.Context, b *Batcher[req, int], r req) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		v, err := b.Submit(ctx, r.rows, r)
		ch <- answer{v, err}
	}()
	return ch
}

func TestConfigErrors(t *testing.T) {
	run := (&recorder{}).run
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{MaxRows: -1}, "max rows -1"},
		{Config{MaxDelay: -time.Second}, "max delay"},
		{Config{QueueSize: -2}, "queue size -2"},
		{Config{Workers: -1}, "workers -1"},
	} {
		if _, err := New(tc.cfg, run); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := New[req, int](Config{}, nil); err == nil {
		t.Error("a nil run function was accepted")
	}
	b := newBatcher(t, Config{}, run)
	if got := b.Config(); got.MaxRows != 1 || got.QueueSize != DefaultQueueSize || got.Workers != DefaultWorkers {
		t.Errorf("defaults %+v", got)
	}
	if _, err := b.Submit(context.Background(), 0, req{}); err == nil {
		t.Error("a request of 0 rows was accepted")
	}
}

// Requests queued in a known order are cut into batches in that order, a
// batch never exceeds MaxRows unless one request alone does, a request's
// rows stay in one batch, and each answer goes to its own request.
func TestBatchesInOrder(t *testing.T) {
	for _, tc := range []struct {
		name    string
		maxRows int
		rows    []int
		want    [][]int // ids per batch
	}{
		{"batching off", 1, []int{1, 1, 1}, [][]int{{0}, {1}, {2}}},
		{"off keeps a multi-row request whole", 1, []int{3, 1}, [][]int{{0}, {1}}},
		{"fill to max", 4, []int{1, 1, 1, 1, 1, 1}, [][]int{{0, 1, 2, 3}, {4, 5}}},
		{"next does not fit", 4, []int{3, 3, 2}, [][]int{{0}, {1}, {2}}},
		{"mixed", 5, []int{2, 3, 1, 4, 1}, [][]int{{0, 1}, {2, 3}, {4}}},
		{"oversized request runs alone", 4, []int{1, 6, 1}, [][]int{{0}, {1}, {2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{gate: make(chan struct{})}
			// A long delay: only a full batch, a request that does not fit or Close cuts.
			b := newBatcher(t, Config{MaxRows: tc.maxRows, MaxDelay: time.Hour}, rec.run)
			// A first request holds the only worker, so the rest queue up in order.
			first := submitAsync(context.Background(), b, req{id: 100, rows: tc.maxRows})
			for deadline := time.Now().Add(10 * time.Second); b.Len() != 0 || len(rec.seen()) != 0; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the first request was not taken")
				}
			}
			time.Sleep(5 * time.Millisecond) // let the worker reach the gate
			var answers []<-chan answer
			for i, n := range tc.rows {
				answers = append(answers, submitAsync(context.Background(), b, req{id: i, rows: n}))
				waitLen(t, b, i+1)
			}
			done := make(chan struct{})
			go func() {
				for {
					select {
					case rec.gate <- struct{}{}:
					case <-done:
						return
					}
				}
			}()
			defer close(done)
			if a := <-first; a.err != nil || a.v != 1000 {
				t.Fatalf("first: %+v", a)
			}
			last := tc.want[len(tc.want)-1]
			check := func(i int) {
				if a := <-answers[i]; a.err != nil || a.v != i*10 {
					t.Fatalf("request %d got %+v", i, a)
				}
			}
			for i := range last[0] {
				check(i)
			}
			// The last batch may not be full: with an hour's delay only Close cuts it.
			go b.Close()
			for _, i := range last {
				check(i)
			}
			var got [][]int
			for _, bt := range rec.seen()[1:] {
				var ids []int
				for _, r := range bt {
					ids = append(ids, r.id)
				}
				got = append(got, ids)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("batches %v, want %v", got, tc.want)
			}
		})
	}
}

// A batch that is not full runs once its oldest request has waited
// MaxDelay, and not before.
func TestMaxDelay(t *testing.T) {
	for _, delay := range []time.Duration{0, 30 * time.Millisecond, 120 * time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			rec := &recorder{}
			var mu sync.Mutex
			var waits []time.Duration
			b := newBatcher(t, Config{MaxRows: 8, MaxDelay: delay, Queued: func(d time.Duration) {
				mu.Lock()
				waits = append(waits, d)
				mu.Unlock()
			}}, rec.run)
			start := time.Now()
			if v, err := b.Submit(context.Background(), 1, req{id: 7, rows: 1}); err != nil || v != 70 {
				t.Fatalf("got %d, %v", v, err)
			}
			took := time.Since(start)
			if took < delay {
				t.Errorf("ran after %v, before the %v delay", took, delay)
			}
			if took > delay+5*time.Second {
				t.Errorf("ran after %v, long past the %v delay", took, delay)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(waits) != 1 || waits[0] < delay {
				t.Errorf("queue times %v, want one of at least %v", waits, delay)
			}
		})
	}
}

// With no delay (greedy batching, the server's default) a lone request
// runs at once, and the requests that queue while the only worker is busy
// run together as the next batch.
func TestGreedyBatching(t *testing.T) {
	rec := &recorder{gate: make(chan struct{})}
	b := newBatcher(t, Config{MaxRows: 8}, rec.run)
	var release sync.Once
	open := func() { release.Do(func() { close(rec.gate) }) }
	t.Cleanup(open) // runs before b.Close, so a failed test cannot leave the worker stuck
	first := submitAsync(context.Background(), b, req{id: 1, rows: 1})
	for deadline := time.Now().Add(10 * time.Second); rec.entered.Load() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a lone request did not run at once")
		}
	}
	var answers []<-chan answer
	for i := 2; i <= 4; i++ {
		answers = append(answers, submitAsync(context.Background(), b, req{id: i, rows: 1}))
		waitLen(t, b, i-1)
	}
	open()
	if a := <-first; a.err != nil || a.v != 10 {
		t.Fatalf("first: %+v", a)
	}
	for i, ch := range answers {
		if a := <-ch; a.err != nil || a.v != (i+2)*10 {
			t.Fatalf("request %d: %+v", i+2, a)
		}
	}
	if got := fmt.Sprint(rec.seen()); got != "[[{1 1}] [{2 1} {3 1} {4 1}]]" {
		t.Errorf("batches %s, want the first alone and the rest together", got)
	}
}

// A full batch does not wait for the delay.
func TestFullBatchRunsAtOnce(t *testing.T) {
	rec := &recorder{}
	var stats []Stats
	var mu sync.Mutex
	b := newBatcher(t, Config{MaxRows: 4, MaxDelay: time.Hour, Ran: func(s Stats) {
		mu.Lock()
		stats = append(stats, s)
		mu.Unlock()
	}}, rec.run)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v, err := b.Submit(context.Background(), 2, req{id: i, rows: 2}); err != nil || v != i*10 {
				t.Errorf("request %d: %d, %v", i, v, err)
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(stats) != 1 || stats[0].Rows != 4 || stats[0].Requests != 2 || stats[0].Err != nil {
		t.Errorf("batches %+v, want one of 2 requests and 4 rows", stats)
	}
}

// A request cancelled while queued leaves the queue; the others still run.
func TestCancelWhileQueued(t *testing.T) {
	rec := &recorder{}
	b := newBatcher(t, Config{MaxRows: 3, MaxDelay: time.Hour}, rec.run)
	ctx, cancel := context.WithCancel(context.Background())
	gone := submitAsync(ctx, b, req{id: 1, rows: 1})
	waitLen(t, b, 1)
	stay := submitAsync(context.Background(), b, req{id: 2, rows: 1})
	waitLen(t, b, 2)
	cancel()
	if a := <-gone; !errors.Is(a.err, context.Canceled) {
		t.Fatalf("cancelled request got %+v", a)
	}
	waitLen(t, b, 1)
	// Two more rows fill the batch of three: the cancelled request is not in it.
	more := submitAsync(context.Background(), b, req{id: 3, rows: 2})
	for _, want := range []struct {
		ch <-chan answer
		v  int
	}{{stay, 20}, {more, 30}} {
		if a := <-want.ch; a.err != nil || a.v != want.v {
			t.Fatalf("got %+v, want %d", a, want.v)
		}
	}
	if got := fmt.Sprint(rec.seen()); got != "[[{2 1} {3 2}]]" {
		t.Errorf("batches %s", got)
	}
}

// A request cancelled while its batch runs returns at once; the batch
// finishes for the others.
func TestCancelWhileRunning(t *testing.T) {
	rec := &recorder{gate: make(chan struct{})}
	b := newBatcher(t, Config{MaxRows: 2, MaxDelay: time.Hour}, rec.run)
	ctx, cancel := context.WithCancel(context.Background())
	gone := submitAsync(ctx, b, req{id: 1, rows: 1})
	waitLen(t, b, 1)
	stay := submitAsync(context.Background(), b, req{id: 2, rows: 1})
	waitLen(t, b, 0) // cut: the batch is full and now waits on the gate
	cancel()
	select {
	case a := <-gone:
		if !errors.Is(a.err, context.Canceled) {
			t.Fatalf("cancelled request got %+v", a)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled request waited for its batch")
	}
	rec.gate <- struct{}{}
	if a := <-stay; a.err != nil || a.v != 20 {
		t.Fatalf("the other request got %+v", a)
	}
}

// Past QueueSize waiting requests, Submit fails with ErrFull at once;
// nothing queued is lost.
func TestOverload(t *testing.T) {
	rec := &recorder{gate: make(chan struct{})}
	b := newBatcher(t, Config{MaxRows: 1, QueueSize: 2}, rec.run)
	running := submitAsync(context.Background(), b, req{id: 0, rows: 1})
	waitLen(t, b, 0)
	queued := []<-chan answer{
		submitAsync(context.Background(), b, req{id: 1, rows: 1}),
	}
	waitLen(t, b, 1)
	queued = append(queued, submitAsync(context.Background(), b, req{id: 2, rows: 1}))
	waitLen(t, b, 2)
	start := time.Now()
	if _, err := b.Submit(context.Background(), 1, req{id: 3, rows: 1}); !errors.Is(err, ErrFull) {
		t.Fatalf("over the queue: %v, want ErrFull", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("ErrFull took %v", d)
	}
	go func() {
		for range 3 {
			rec.gate <- struct{}{}
		}
	}()
	for i, ch := range append([]<-chan answer{running}, queued...) {
		if a := <-ch; a.err != nil || a.v != i*10 {
			t.Errorf("request %d: %+v", i, a)
		}
	}
}

// Close runs what is queued without waiting for the delay; later
// submissions fail with ErrClosed.
func TestCloseDrains(t *testing.T) {
	rec := &recorder{}
	b, err := New(Config{MaxRows: 16, MaxDelay: time.Hour}, rec.run)
	if err != nil {
		t.Fatal(err)
	}
	var answers []<-chan answer
	for i := range 3 {
		answers = append(answers, submitAsync(context.Background(), b, req{id: i, rows: 1}))
	}
	waitLen(t, b, 3)
	b.Close()
	for i, ch := range answers {
		if a := <-ch; a.err != nil || a.v != i*10 {
			t.Errorf("request %d: %+v", i, a)
		}
	}
	if _, err := b.Submit(context.Background(), 1, req{}); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	b.Close() // twice is fine
}

// A failing or panicking run function fails its batch only.
func TestRunFailures(t *testing.T) {
	boom := errors.New("engine on fire")
	for _, tc := range []struct {
		name string
		run  func(items []req) ([]int, error)
		want string
	}{
		{"error", func([]req) ([]int, error) { return nil, boom }, "engine on fire"},
		{"panic", func([]req) ([]int, error) { panic("index out of range") }, "run failed: index out of range"},
		{"short", func([]req) ([]int, error) { return []int{1}, nil }, "returned 1 results for 2 requests"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fail := true
			b := newBatcher(t, Config{MaxRows: 2, MaxDelay: time.Hour}, func(items []req) ([]int, error) {
				if fail {
					return tc.run(items)
				}
				return (&recorder{}).run(items)
			})
			a, c := submitAsync(context.Background(), b, req{id: 1, rows: 1}), submitAsync(context.Background(), b, req{id: 2, rows: 1})
			for _, ch := range []<-chan answer{a, c} {
				if got := <-ch; got.err == nil || !strings.Contains(got.err.Error(), tc.want) {
					t.Errorf("got %+v, want an error containing %q", got, tc.want)
				}
			}
			fail = false // the workers survive: the next batch runs
			if v, err := b.Submit(context.Background(), 2, req{id: 3, rows: 2}); err != nil || v != 30 {
				t.Errorf("after the failure: %d, %v", v, err)
			}
		})
	}
}

// Many clients at once, several workers: every answer is the client's
// own, and no batch is larger than MaxRows unless one request alone is.
func TestConcurrentClients(t *testing.T) {
	const maxRows = 8
	var mu sync.Mutex
	var bad []string
	run := func(items []req) ([]int, error) {
		rows := 0
		for _, it := range items {
			rows += it.rows
		}
		if rows > maxRows && len(items) > 1 {
			mu.Lock()
			bad = append(bad, fmt.Sprint(items))
			mu.Unlock()
		}
		time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
		out := make([]int, len(items))
		for i, it := range items {
			out[i] = it.id * 10
		}
		return out, nil
	}
	b := newBatcher(t, Config{MaxRows: maxRows, MaxDelay: 200 * time.Microsecond, Workers: 3, QueueSize: 1000}, run)
	var wg sync.WaitGroup
	for c := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				id := c*1000 + i
				rows := 1 + (id % 5)
				if id%37 == 0 {
					rows = maxRows + 3
				}
				ctx, cancel := context.WithCancel(context.Background())
				if id%11 == 0 {
					cancel() // some clients give up at once
				}
				v, err := b.Submit(ctx, rows, req{id: id, rows: rows})
				cancel()
				switch {
				case errors.Is(err, context.Canceled) && id%11 == 0:
				case err != nil:
					t.Errorf("request %d: %v", id, err)
				case v != id*10:
					t.Errorf("request %d got request %d's answer", id, v/10)
				}
			}
		}()
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("batches over %d rows: %v", maxRows, bad)
	}
}
