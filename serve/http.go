package serve

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/serve/batch"
)

// statusClientGone is the failure code recorded (never sent) when the
// client left before its answer, as nginx logs it.
const statusClientGone = 499

// httpError is an error with the status it answers with.
type httpError struct {
	code       int
	msg        string
	retryAfter bool // 503s the client should retry
}

func (e *httpError) Error() string { return e.msg }

func errorf(code int, format string, a ...any) *httpError {
	return &httpError{code: code, msg: fmt.Sprintf(format, a...)}
}

var errClientGone = &httpError{code: statusClientGone, msg: "the client went away"}

// statusOf is the HTTP status an error answers with.
func statusOf(err error) int {
	var he *httpError
	if errors.As(err, &he) {
		return he.code
	}
	return http.StatusInternalServerError
}

// writeError answers {"error": "..."} with err's status; nothing is sent
// to a client that went away.
func writeError(w http.ResponseWriter, err error) {
	code := statusOf(err)
	if code == statusClientGone {
		return
	}
	var he *httpError
	if errors.As(err, &he) && he.retryAfter {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, code, struct {
		Error string `json:"error"`
	}{err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"the reply could not be encoded"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// only answers one method (HEAD too, for GET) and writes handler errors
// as JSON.
func only(method string, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", method)
			writeError(w, errorf(http.StatusMethodNotAllowed, "%s %s: use %s", r.Method, r.URL.Path, method))
			return
		}
		if err := h(w, r); err != nil {
			writeError(w, err)
		}
	})
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	get := func(pattern string, h handlerFunc) { mux.Handle(pattern, s.auth(only(http.MethodGet, h))) }
	post := func(pattern string, h handlerFunc) { mux.Handle(pattern, s.auth(only(http.MethodPost, h))) }
	// Health checks stay open: load balancers and kubelets carry no token.
	mux.Handle("/v2/health/live", only(http.MethodGet, s.live))
	mux.Handle("/v2/health/ready", only(http.MethodGet, s.ready))
	get("/v2", s.serverMetadata)
	for _, base := range []string{"/v2/models/{name}", "/v2/models/{name}/versions/{version}"} {
		get(base, s.modelMetadata)
		get(base+"/ready", s.modelReady)
		post(base+"/infer", s.infer)
	}
	post("/v1/embeddings", s.embeddings)
	prom := promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
	get("/metrics", func(w http.ResponseWriter, r *http.Request) error { prom.ServeHTTP(w, r); return nil })
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errorf(http.StatusNotFound, "no such endpoint %s %s (see /v2, /v2/models/NAME/infer, /v1/embeddings, /metrics)",
			r.Method, clipName(r.URL.Path)))
	}))
	return s.drain(mux)
}

// drain answers 503 to everything but the health checks once Shutdown has
// begun, so that requests on kept-alive connections go elsewhere.
func (s *Server) drain(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() && r.URL.Path != "/v2/health/live" && r.URL.Path != "/v2/health/ready" {
			w.Header().Set("Connection", "close")
			writeError(w, &httpError{code: http.StatusServiceUnavailable, msg: "the server is shutting down; retry on another replica", retryAfter: true})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// auth requires the bearer token when one is set. The digests make the
// comparison constant-time in the token's length too.
func (s *Server) auth(h http.Handler) http.Handler {
	if s.cfg.Token == "" {
		return h
	}
	want := sha256.Sum256([]byte("Bearer " + s.cfg.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := sha256.Sum256([]byte(r.Header.Get("Authorization")))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sslzoo"`)
			msg := "missing bearer token: send Authorization: Bearer <the token in the server's --token-file>"
			if r.Header.Get("Authorization") != "" {
				msg = "wrong bearer token: send Authorization: Bearer <the token in the server's --token-file>"
			}
			writeError(w, errorf(http.StatusUnauthorized, "%s", msg))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// readBody reads the request body within the body limit.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := s.cfg.BodyLimit
	tooLarge := errorf(http.StatusRequestEntityTooLarge, "the request body is over the server's %d-byte limit (--body-limit); send fewer rows per request", limit)
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		if r.Context().Err() != nil {
			return nil, errClientGone
		}
		return nil, errorf(http.StatusBadRequest, "reading the request body: %v", err)
	}
	if buf.Len() == 0 {
		return nil, errorf(http.StatusBadRequest, "the request body is empty")
	}
	return buf.Bytes(), nil
}

// submit queues a job on its model's batcher and waits, within the
// server's timeout, for its outputs.
func (s *Server) submit(ctx context.Context, m *model, j job) ([]*onnxrt.Tensor, error) {
	tctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	out, err := m.batcher.Submit(tctx, j.rows, j)
	switch {
	case err == nil:
		return out, nil
	case ctx.Err() != nil:
		return nil, errClientGone
	case errors.Is(err, batch.ErrFull):
		return nil, &httpError{code: http.StatusServiceUnavailable, retryAfter: true,
			msg: fmt.Sprintf("model %q is overloaded: its queue of %d requests is full (--queue); retry later", m.name, s.cfg.Queue)}
	case errors.Is(err, batch.ErrClosed):
		return nil, &httpError{code: http.StatusServiceUnavailable, retryAfter: true, msg: "the server is shutting down; retry on another replica"}
	case errors.Is(err, context.DeadlineExceeded):
		return nil, errorf(http.StatusGatewayTimeout, "model %q gave no answer within %v (--timeout)", m.name, s.cfg.Timeout)
	}
	return nil, errorf(http.StatusInternalServerError, "model %q: %v", m.name, err)
}

// inference wraps an inference handler with its metrics: in-flight,
// latency, and success or failure by status.
func (s *Server) inference(protocol string, model func() string, w http.ResponseWriter, h func() error) error {
	start := time.Now()
	err := h()
	name := model()
	if err == nil {
		s.metrics.success.WithLabelValues(name, protocol).Inc()
		s.metrics.latency.WithLabelValues(name, protocol).Observe(time.Since(start).Seconds())
		return nil
	}
	s.metrics.failure.WithLabelValues(name, protocol, strconv.Itoa(statusOf(err))).Inc()
	return err
}

// track counts a request in flight on a model until done is called.
func (s *Server) track(m *model) (done func()) {
	g := s.metrics.inflight.WithLabelValues(m.name)
	g.Inc()
	return g.Dec
}

func (s *Server) live(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]bool{"live": true})
	return nil
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) error {
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "error": "the server is shutting down"})
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
	return nil
}

// writeBody sends a response body built in memory.
func writeBody(w http.ResponseWriter, contentType string, b []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	io.Copy(w, bytes.NewReader(b))
}
