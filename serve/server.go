// Package serve is sslzoo's embedding server. It serves exported encoders
// over HTTP in two protocols that existing clients already speak: the
// KServe v2 (Open Inference) protocol with its binary tensor extension,
// which Triton's and KServe's clients use, and OpenAI's /v1/embeddings.
// Requests for one model are batched together dynamically (serve/batch),
// the queue is bounded, and Prometheus metrics are kept per model.
//
// The server holds no state beyond its loaded models, so any number of
// replicas can sit behind an HTTP load balancer.
package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sslzoo/sslzoo"
	"github.com/sslzoo/sslzoo/internal/oneline"
	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/serve/batch"
)

// Defaults for zero Config fields.
const (
	DefaultMaxBatch  = 32
	DefaultQueue     = 256
	DefaultBodyLimit = 32 << 20
	DefaultTimeout   = 30 * time.Second
	// DefaultMaxRows caps the rows of one request: a body under the limit
	// can still declare a batch far larger than anyone should send at once.
	DefaultMaxRows = 1024
)

// Config tunes a Server. The zero value takes the defaults above, with
// no authentication.
type Config struct {
	// MaxBatch is the most rows one engine run takes; 1 turns batching off.
	MaxBatch int
	// MaxDelay is how long a request may wait for others to share its
	// batch. 0, the default (as Triton's max_queue_delay_microseconds),
	// runs a batch as soon as an engine is free: the requests that came in
	// while the last batch ran make the next one. On two cores that beat a
	// 5ms delay at every load `sslzoo bench serve` tried (README).
	MaxDelay time.Duration
	// Queue is the most requests that may wait per model; past it the
	// server answers 503 with Retry-After.
	Queue int
	// Instances is how many batches of one model may run at once (as
	// Triton's instance_group count); 0 means 1. On a CPU, two instances
	// of one thread each keep the cores busy while HTTP work goes on.
	Instances int
	// BodyLimit is the largest request body, in bytes (413 past it).
	BodyLimit int64
	// Timeout bounds a request from arrival to answer (504 past it).
	Timeout time.Duration
	// MaxRows caps the rows (images, texts) of one request.
	MaxRows int
	// Token, when set, must come as "Authorization: Bearer TOKEN" on every
	// request but the health checks.
	Token string
	// Version is what GET /v2 reports.
	Version string
}

func (c *Config) fill() error {
	switch {
	case c.MaxBatch < 0:
		return fmt.Errorf("max batch %d: want >= 1 (1 turns batching off)", c.MaxBatch)
	case c.MaxDelay < 0:
		return fmt.Errorf("max delay %v: want >= 0", c.MaxDelay)
	case c.Queue < 0 || c.BodyLimit < 0 || c.Timeout < 0 || c.MaxRows < 0 || c.Instances < 0:
		return errors.New("queue, body limit, timeout, max rows and instances must not be negative")
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.Queue == 0 {
		c.Queue = DefaultQueue
	}
	if c.BodyLimit == 0 {
		c.BodyLimit = DefaultBodyLimit
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxRows == 0 {
		c.MaxRows = DefaultMaxRows
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	return nil
}

// Model is an encoder served under a name.
type Model struct {
	Name    string
	Encoder *sslzoo.Encoder
}

// job is one request's rows on their way through a model's batcher: the
// engine's inputs in its order, each with the rows on axis 0.
type job struct {
	inputs []*onnxrt.Tensor
	rows   int
}

type model struct {
	name    string
	enc     *sslzoo.Encoder
	batcher *batch.Batcher[job, []*onnxrt.Tensor]
}

// Server serves a fixed set of models. Build it with New, then either
// Serve a listener or mount Handler; Shutdown drains it.
type Server struct {
	cfg      Config
	models   map[string]*model
	names    []string // sorted
	metrics  *metrics
	handler  http.Handler
	draining atomic.Bool

	mu   sync.Mutex
	http *http.Server
}

// New starts a batcher per model. The encoders stay the caller's: close
// them after Shutdown.
func New(cfg Config, models ...Model) (*Server, error) {
	if err := cfg.fill(); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	if len(models) == 0 {
		return nil, errors.New("serve: no models to serve")
	}
	s := &Server{cfg: cfg, models: map[string]*model{}, metrics: newMetrics()}
	for _, m := range models {
		if err := CheckName(m.Name); err != nil {
			s.closeBatchers()
			return nil, fmt.Errorf("serve: %w", err)
		}
		if _, dup := s.models[m.Name]; dup {
			s.closeBatchers()
			return nil, fmt.Errorf("serve: model %q is given twice; serve a copy under another name", m.Name)
		}
		sm := &model{name: m.Name, enc: m.Encoder}
		name := m.Name
		b, err := batch.New(batch.Config{
			MaxRows: cfg.MaxBatch, MaxDelay: cfg.MaxDelay, QueueSize: cfg.Queue, Workers: cfg.Instances,
			Queued: func(d time.Duration) { s.metrics.queue.WithLabelValues(name).Observe(d.Seconds()) },
			Ran: func(st batch.Stats) {
				s.metrics.ran(name, st.Rows, st.Run)
				if st.Err == nil {
					s.metrics.rows.WithLabelValues(name).Add(float64(st.Rows))
				}
			},
		}, sm.run)
		if err != nil {
			s.closeBatchers()
			return nil, fmt.Errorf("serve: %w", err)
		}
		sm.batcher = b
		s.models[m.Name] = sm
		s.names = append(s.names, m.Name)
		s.metrics.addModel(m.Name, b.Len)
	}
	slices.Sort(s.names)
	s.handler = s.routes()
	return s, nil
}

// CheckName accepts model names that are safe in a URL path and a file
// name: letters, digits, '.', '_' and '-', not starting with '.'.
func CheckName(name string) error {
	if name == "" || len(name) > 128 || name[0] == '.' {
		return fmt.Errorf("model name %q: want 1-128 characters of letters, digits, '.', '_' or '-', not starting with '.'", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("model name %q: %q is not allowed (letters, digits, '.', '_' and '-' are)", name, r)
		}
	}
	return nil
}

// Handler is the server's HTTP handler, for mounting or for tests.
func (s *Server) Handler() http.Handler { return s.handler }

// Models lists the served model names, sorted.
func (s *Server) Models() []string { return slices.Clone(s.names) }

// Serve answers requests on ln until Shutdown; it returns nil after a
// Shutdown and the listener's error otherwise.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.http != nil {
		s.mu.Unlock()
		return errors.New("serve: Serve called twice")
	}
	s.http = &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	hs := s.http
	s.mu.Unlock()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops taking requests (new ones get 503, and readiness fails),
// lets those in flight finish until ctx ends, then stops the batchers.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.mu.Lock()
	hs := s.http
	s.mu.Unlock()
	var err error
	if hs != nil {
		err = hs.Shutdown(ctx)
	}
	s.closeBatchers()
	return err
}

func (s *Server) closeBatchers() {
	for _, m := range s.models {
		if m.batcher != nil {
			m.batcher.Close()
		}
	}
}

// run is a model's batch function: the jobs' inputs joined along the
// batch axis, one engine run, and the outputs cut back into each job's
// rows.
func (m *model) run(jobs []job) ([][]*onnxrt.Tensor, error) {
	eng := m.enc.Engine()
	total := 0
	for _, j := range jobs {
		total += j.rows
	}
	in := jobs[0].inputs
	if len(jobs) > 1 {
		in = make([]*onnxrt.Tensor, len(jobs[0].inputs))
		parts := make([]*onnxrt.Tensor, len(jobs))
		for i := range in {
			for k, j := range jobs {
				parts[k] = j.inputs[i]
			}
			in[i] = onnxrt.ConcatRows(parts)
		}
	}
	out, err := eng.Run(in...)
	if err != nil {
		return nil, err
	}
	if err := onnxrt.CheckRows(out, total); err != nil {
		return nil, err
	}
	res := make([][]*onnxrt.Tensor, len(jobs))
	lo := 0
	for k, j := range jobs {
		res[k] = make([]*onnxrt.Tensor, len(out))
		for o, t := range out {
			res[k][o] = onnxrt.SliceRows(t, lo, lo+j.rows)
		}
		lo += j.rows
	}
	return res, nil
}

// lookup finds a served model; the error lists what is served.
func (s *Server) lookup(name string) (*model, error) {
	if m, ok := s.models[name]; ok {
		return m, nil
	}
	return nil, &httpError{code: http.StatusNotFound, msg: fmt.Sprintf("model %q is not served here (served: %s)",
		clipName(name), strings.Join(s.names, ", "))}
}

func clipName(s string) string { return oneline.Clip(s, 64) }
