package daemon

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"

	"github.com/portmux/portmux/mux"
)

// outcome is how a routed connection ended: the outcome label of
// portmux_connections_total. Connections the mux turned away are counted
// there too, under their mux.Reason.
type outcome uint8

const (
	outcomeOK          outcome = iota // served to its end
	outcomeIdleTimeout                // no byte either way for idle_timeout
	outcomeError                      // the relay, bridge or echo failed
	outcomeDialError                  // the backend refused or failed
	outcomeDialTimeout                // the backend did not answer within dial_timeout
	outcomeRouteLimit                 // the route's max_connections were open
	outcomeShutdown                   // the server behind the route was shutting down
	outcomeQueueFull                  // the server behind the route accepted too slowly
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"ok", "idle_timeout", "error", "dial_error", "dial_timeout", "route_limit", "shutdown", "queue_full"}

func (o outcome) String() string { return outcomeNames[o] }

// sniffBuckets are the sniff latency histogram's upper bounds, in seconds:
// from a first read that arrives at once to the 3 s default timeout.
var sniffBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// gauge is a metric that goes up and down.
type gauge = *metrics.Gauge

// daemonMetrics is the daemon's metric set, exposed at /metrics.
type daemonMetrics struct {
	set   *metrics.Set
	ready atomic.Bool // /healthz answers 200 while set

	// What a connection updates, made once per label set, so that a
	// connection formats no metric name.
	mu       sync.RWMutex
	sniffs   map[string]*metrics.PrometheusHistogram
	rejects  map[rejectKey]*metrics.Counter
	counters map[string]*metrics.Counter // by full name
}

type rejectKey struct {
	listener string
	reason   mux.Reason
}

// outcomeCounters are one route's portmux_connections_total counters.
type outcomeCounters [numOutcomes]*metrics.Counter

func (c *outcomeCounters) add(o outcome) { c[o].Inc() }

func newMetrics() *daemonMetrics {
	return &daemonMetrics{
		set:      metrics.NewSet(),
		sniffs:   map[string]*metrics.PrometheusHistogram{},
		rejects:  map[rejectKey]*metrics.Counter{},
		counters: map[string]*metrics.Counter{},
	}
}

func (m *daemonMetrics) counter(name string) *metrics.Counter {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.counters[name]
	if c == nil {
		c = m.set.GetOrCreateCounter(name)
		m.counters[name] = c
	}
	return c
}

// outcomes returns a route's connection counters, one per outcome.
func (m *daemonMetrics) outcomes(listener, route string) *outcomeCounters {
	var c outcomeCounters
	for o := range numOutcomes {
		c[o] = m.counter(fmt.Sprintf(`portmux_connections_total{listener=%q,route=%q,outcome=%q}`, listener, route, o))
	}
	return &c
}

// rejected counts a connection the mux turned away.
func (m *daemonMetrics) rejected(listener string, reason mux.Reason) {
	k := rejectKey{listener, reason}
	m.mu.RLock()
	c := m.rejects[k]
	m.mu.RUnlock()
	if c == nil {
		c = m.counter(fmt.Sprintf(`portmux_connections_total{listener=%q,route="",outcome=%q}`, listener, reason))
		m.mu.Lock()
		m.rejects[k] = c
		m.mu.Unlock()
	}
	c.Inc()
}

// bytes returns a route's byte counter for one direction (up: client to
// backend).
func (m *daemonMetrics) bytes(listener, route, direction string) *metrics.Counter {
	return m.counter(fmt.Sprintf(`portmux_bytes_total{listener=%q,route=%q,direction=%q}`, listener, route, direction))
}

// sniffTimes returns a listener's histogram of the time from accept to
// the routing decision.
func (m *daemonMetrics) sniffTimes(listener string) *metrics.PrometheusHistogram {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.sniffs[listener]
	if h == nil {
		h = m.set.GetOrCreatePrometheusHistogramExt(fmt.Sprintf(`portmux_sniff_seconds{listener=%q}`, listener), sniffBuckets)
		m.sniffs[listener] = h
	}
	return h
}

func (m *daemonMetrics) active(listener, route string) gauge {
	return m.set.GetOrCreateGauge(fmt.Sprintf(`portmux_active_connections{listener=%q,route=%q}`, listener, route), nil)
}

func (m *daemonMetrics) reload(ok bool) {
	outcome := "ok"
	if !ok {
		outcome = "error"
	}
	m.counter(fmt.Sprintf(`portmux_reloads_total{outcome=%q}`, outcome)).Inc()
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
