package main

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// sniffBuckets are the sniff latency histogram's upper bounds, in seconds:
// from a first read that arrives at once to the 3 s default timeout.
var sniffBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// daemonMetrics is the daemon's metric set, exposed at /metrics.
type daemonMetrics struct {
	set   *metrics.Set
	ready atomic.Bool // /healthz answers 200 while set

	// The metrics a connection updates, by their labels: looked up by
	// a map read instead of formatting their names every time.
	mu       sync.RWMutex
	counters map[metricKey]*metrics.Counter
	sniffs   map[string]*metrics.PrometheusHistogram
}

type metricKey struct {
	name                     string // the metric's name
	listener, route, outcome string // outcome: the direction for bytes
}

func newMetrics() *daemonMetrics {
	return &daemonMetrics{
		set:      metrics.NewSet(),
		counters: make(map[metricKey]*metrics.Counter),
		sniffs:   make(map[string]*metrics.PrometheusHistogram),
	}
}

// counter returns the counter for k, made on first use.
func (m *daemonMetrics) counter(k metricKey) *metrics.Counter {
	m.mu.RLock()
	c := m.counters[k]
	m.mu.RUnlock()
	if c != nil {
		return c
	}
	label := "outcome"
	if k.name == "portmux_bytes_total" {
		label = "direction"
	}
	c = m.set.GetOrCreateCounter(fmt.Sprintf(`%s{listener=%q,route=%q,%s=%q}`, k.name, k.listener, k.route, label, k.outcome))
	m.mu.Lock()
	m.counters[k] = c
	m.mu.Unlock()
	return c
}

// conn counts a connection's outcome: "ok", "idle_timeout", "error",
// "dial_error", "dial_timeout", "route_limit", or a mux rejection reason
// ("upgrade_required", "timeout", "no_match", ...).
func (m *daemonMetrics) conn(listener, route, outcome string) {
	m.counter(metricKey{"portmux_connections_total", listener, route, outcome}).Inc()
}

func (m *daemonMetrics) sniff(listener string, d time.Duration) {
	m.mu.RLock()
	h := m.sniffs[listener]
	m.mu.RUnlock()
	if h == nil {
		h = m.set.GetOrCreatePrometheusHistogramExt(fmt.Sprintf(`portmux_sniff_seconds{listener=%q}`, listener), sniffBuckets)
		m.mu.Lock()
		m.sniffs[listener] = h
		m.mu.Unlock()
	}
	h.Update(d.Seconds())
}

func (m *daemonMetrics) active(listener, route string) *metrics.Gauge {
	return m.set.GetOrCreateGauge(fmt.Sprintf(`portmux_active_connections{listener=%q,route=%q}`, listener, route), nil)
}

func (m *daemonMetrics) reload(outcome string) {
	m.set.GetOrCreateCounter(fmt.Sprintf(`portmux_reloads_total{outcome=%q}`, outcome)).Inc()
}

// handler serves /metrics (Prometheus text, with Go and process metrics),
// /healthz (readiness: 200 while serving, 503 once draining) and /livez
// (liveness: 200 while the process answers at all).
func (m *daemonMetrics) handler() http.Handler {
	mx := http.NewServeMux()
	mx.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		m.set.WritePrometheus(w)
		metrics.WriteProcessMetrics(w)
	})
	mx.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mx.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if !m.ready.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mx
}
