package serve

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Protocol labels of the request metrics.
const (
	protoV2     = "v2"
	protoOpenAI = "openai"
)

// metrics are the server's Prometheus series, on a registry of its own so
// that several servers (tests) never share counters. Names follow Triton's
// (nv_inference_request_success, nv_inference_queue_duration_us, ...) in
// Prometheus' conventions: base units, _total on counters.
type metrics struct {
	reg       *prometheus.Registry
	success   *prometheus.CounterVec
	failure   *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	queue     *prometheus.HistogramVec
	compute   *prometheus.HistogramVec
	batchRows *prometheus.HistogramVec
	rows      *prometheus.CounterVec
	inflight  *prometheus.GaugeVec
}

func newMetrics() *metrics {
	const ns = "sslzoo"
	// 0.25 ms to about 16 s: a single small image up to a long queue wait.
	lat := prometheus.ExponentialBuckets(0.00025, 2, 17)
	m := &metrics{
		reg: prometheus.NewRegistry(),
		success: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "request_success_total",
			Help: "Inference requests answered with 200, per model and protocol (v2 or openai)."}, []string{"model", "protocol"}),
		failure: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "request_failure_total",
			Help: "Inference requests that failed, per model, protocol and HTTP status (499: the client went away). " +
				"The model is empty when the request named none that is served."}, []string{"model", "protocol", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "request_duration_seconds",
			Help: "Time from a request's arrival to its response, per model and protocol.", Buckets: lat}, []string{"model", "protocol"}),
		queue: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "queue_duration_seconds",
			Help: "Time a request waited in the batcher's queue before its batch was cut.", Buckets: lat}, []string{"model"}),
		compute: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "compute_duration_seconds",
			Help: "Time of one engine run over a batch.", Buckets: lat}, []string{"model"}),
		batchRows: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "batch_size",
			Help: "Rows in each batch the engine ran.", Buckets: prometheus.ExponentialBuckets(1, 2, 10)}, []string{"model"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "inference_rows_total",
			Help: "Rows (images or texts) embedded, per model."}, []string{"model"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "inflight_requests",
			Help: "Inference requests being handled now, per model."}, []string{"model"}),
	}
	m.reg.MustRegister(m.success, m.failure, m.latency, m.queue, m.compute, m.batchRows, m.rows, m.inflight,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// addModel registers the per-model series that need the model itself:
// the queue depth, read from its batcher when scraped.
func (m *metrics) addModel(name string, depth func() int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "sslzoo", Name: "queue_depth",
		Help: "Requests waiting in the batcher's queue.", ConstLabels: prometheus.Labels{"model": name}},
		func() float64 { return float64(depth()) }))
	// Series exist from the start, so a scrape shows zeros rather than nothing.
	for _, p := range []string{protoV2, protoOpenAI} {
		m.success.WithLabelValues(name, p)
		m.latency.WithLabelValues(name, p)
	}
	m.queue.WithLabelValues(name)
	m.compute.WithLabelValues(name)
	m.batchRows.WithLabelValues(name)
	m.rows.WithLabelValues(name)
	m.inflight.WithLabelValues(name)
}

func (m *metrics) ran(model string, rows int, d time.Duration) {
	m.batchRows.WithLabelValues(model).Observe(float64(rows))
	m.compute.WithLabelValues(model).Observe(d.Seconds())
}
