package loadgen

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Result is what a run measured. Its JSON field names are stable (see the
// package documentation); durations in JSON are in microseconds.
type Result struct {
	Mode        Mode    `json:"mode"`
	Target      string  `json:"target"`
	Concurrency int     `json:"concurrency"` // requests in flight, or connections for h2c
	Streams     int     `json:"streams"`     // requests in flight per connection: 1 but for h2c
	Rate        float64 `json:"rate_limit"`  // requests/s asked for; 0 means unpaced
	Size        int     `json:"size"`        // body or message bytes; tcp: bytes streamed each way per request

	// Elapsed is how long the run lasted: the later of Duration and
	// the end of the last request or error counted (requests left
	// unfinished do not stretch it); if the caller's context stopped
	// the run, until then.
	Elapsed        time.Duration `json:"-"`
	ElapsedSeconds float64       `json:"elapsed_s"`

	Requests          uint64  `json:"requests"` // completed without error
	RequestsPerSecond float64 `json:"requests_per_s"`
	// Connections counts connections opened (TCP connect succeeded).
	Connections          uint64  `json:"connections"`
	ConnectionsPerSecond float64 `json:"connections_per_s"`

	Errors uint64 `json:"errors"`
	// Unfinished counts the requests still in flight when the run
	// stopped: at the end of the drain after Duration, or when the
	// caller's context ended. They are neither requests nor errors.
	Unfinished uint64 `json:"unfinished"`
	// Missed counts, in a paced run, the requests that fell due before
	// the run ended but were never sent: every worker was busy.
	Missed uint64 `json:"missed"`
	// ErrorsByKind has every kind's name as a key, zero or not.
	ErrorsByKind map[string]uint64 `json:"errors_by_kind"`
	// ErrorSamples holds one message per kind that occurred.
	ErrorSamples map[string]string `json:"error_samples,omitempty"`
	// Status counts HTTP status codes received (HTTP modes and 426).
	Status map[string]uint64 `json:"status,omitempty"`

	// Bytes on the wire each way (TCP payload: headers, frames and
	// bodies), over the whole run.
	BytesSent            uint64     `json:"bytes_sent"`
	BytesReceived        uint64     `json:"bytes_received"`
	SentMBPerSecond      float64    `json:"sent_mb_per_s"` // 10^6 bytes
	ReceivedMBPerSecond  float64    `json:"received_mb_per_s"`
	Latency              Latency    `json:"latency_us"`
	LatencyRelativeError float64    `json:"latency_relative_error"`
	Histogram            *Histogram `json:"-"`
	// Connect summarises the setup times of the connections opened: the
	// TCP connect, and for WS the handshake, for H2C the wait for the
	// server's SETTINGS. Request latencies leave them out unless paced.
	Connect          Latency    `json:"connect_us"`
	ConnectHistogram *Histogram `json:"-"`
}

// Latency summarises durations in microseconds. As Result.Latency, those
// of the requests that succeeded: from writing the request's first byte
// (or from when it was due, if Rate is set) to reading the whole
// response; a connection the request had to open, or (h2c) waited for
// another stream to open, is timed apart, in Result.Connect, unless the
// run is paced; so is an h2c wait for a stream slot.
type Latency struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func (r *runner) result(elapsed time.Duration) *Result {
	s := r.s
	res := &Result{
		Mode: s.Mode, Target: s.Target, Concurrency: s.Concurrency, Streams: s.Streams,
		Rate: s.Rate, Size: s.Size, Elapsed: elapsed, ElapsedSeconds: elapsed.Seconds(),
		ErrorsByKind:         map[string]uint64{},
		LatencyRelativeError: RelativeError,
		Histogram:            new(Histogram),
		ConnectHistogram:     new(Histogram),
	}
	var kinds [numKinds]uint64
	for _, w := range r.workers {
		res.Requests += w.requests.Load()
		res.Connections += w.conns.Load()
		res.BytesSent += w.sent.Load()
		res.BytesReceived += w.recv.Load()
		res.Histogram.Merge(&w.hist)
		res.ConnectHistogram.Merge(&w.connect)
		for k, n := range w.kinds {
			kinds[k] += n
			if n > 0 && w.sample[k] != "" {
				if res.ErrorSamples == nil {
					res.ErrorSamples = map[string]string{}
				}
				if _, ok := res.ErrorSamples[kindNames[k]]; !ok {
					res.ErrorSamples[kindNames[k]] = w.sample[k]
				}
			}
		}
		for code, n := range w.status {
			if res.Status == nil {
				res.Status = map[string]uint64{}
			}
			res.Status[strconv.Itoa(code)] += n
		}
	}
	for _, w := range r.workers {
		res.Unfinished += w.unfinished
	}
	for k, n := range kinds {
		res.ErrorsByKind[kindNames[k]] = n
		res.Errors += n
	}
	if at := r.endAt.Load(); s.Rate > 0 && at > 0 {
		// Request n was due at n/Rate: those up to the end were due.
		// (Clamped: at most MaxRate a second over at most 292 years.)
		due := uint64(min(float64(at)/1e9*s.Rate, 1<<62)) + 1
		if s.Requests > 0 {
			due = min(due, uint64(s.Requests))
		}
		if claimed := uint64(r.tickets.Load()); claimed < due {
			res.Missed = due - claimed
		}
	}
	if secs := elapsed.Seconds(); secs > 0 {
		res.RequestsPerSecond = float64(res.Requests) / secs
		res.ConnectionsPerSecond = float64(res.Connections) / secs
		res.SentMBPerSecond = float64(res.BytesSent) / 1e6 / secs
		res.ReceivedMBPerSecond = float64(res.BytesReceived) / 1e6 / secs
	}
	res.Latency = summary(res.Histogram)
	res.Connect = summary(res.ConnectHistogram)
	return res
}

func summary(h *Histogram) Latency {
	return Latency{
		Min: us(h.Min()), Mean: us(h.Mean()), P50: us(h.Quantile(0.5)), P90: us(h.Quantile(0.9)),
		P99: us(h.Quantile(0.99)), P999: us(h.Quantile(0.999)), Max: us(h.Max()),
	}
}

// WriteText writes the result for people to read.
func (res *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "loadgen: mode %s, %s, concurrency %d", res.Mode, res.Target, res.Concurrency)
	if res.Mode == H2C {
		fmt.Fprintf(&b, " connections x %d streams", res.Streams)
	}
	if res.Rate > 0 {
		fmt.Fprintf(&b, ", paced at %g/s", res.Rate)
	}
	fmt.Fprintf(&b, ", %.2f s\n", res.ElapsedSeconds)
	fmt.Fprintf(&b, "  requests     %d ok, %d errors, %d unfinished, %.1f/s\n", res.Requests, res.Errors, res.Unfinished, res.RequestsPerSecond)
	if res.Rate > 0 {
		fmt.Fprintf(&b, "  missed       %d due but never sent: every worker was busy\n", res.Missed)
	}
	fmt.Fprintf(&b, "  connections  %d opened, %.1f/s\n", res.Connections, res.ConnectionsPerSecond)
	fmt.Fprintf(&b, "  bytes        sent %s (%.2f MB/s), received %s (%.2f MB/s)\n",
		byteCount(res.BytesSent), res.SentMBPerSecond, byteCount(res.BytesReceived), res.ReceivedMBPerSecond)
	if res.Histogram != nil && res.Histogram.Count() > 0 {
		l := res.Latency
		fmt.Fprintf(&b, "  latency      min %s  mean %s  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
			usDur(l.Min), usDur(l.Mean), usDur(l.P50), usDur(l.P90), usDur(l.P99), usDur(l.P999), usDur(l.Max))
	}
	if res.ConnectHistogram != nil && res.ConnectHistogram.Count() > 0 {
		l := res.Connect
		fmt.Fprintf(&b, "  connect      min %s  mean %s  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
			usDur(l.Min), usDur(l.Mean), usDur(l.P50), usDur(l.P90), usDur(l.P99), usDur(l.P999), usDur(l.Max))
	}
	if len(res.Status) > 0 {
		codes := make([]string, 0, len(res.Status))
		for c := range res.Status {
			codes = append(codes, c)
		}
		slices.Sort(codes)
		b.WriteString("  status      ")
		for _, c := range codes {
			fmt.Fprintf(&b, " %s: %d", c, res.Status[c])
		}
		b.WriteByte('\n')
	}
	for _, k := range kindNames {
		if n := res.ErrorsByKind[k]; n > 0 {
			fmt.Fprintf(&b, "  error        %-10s %d", k, n)
			if s := res.ErrorSamples[k]; s != "" {
				fmt.Fprintf(&b, " (first: %s)", s)
			}
			b.WriteByte('\n')
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func usDur(v float64) string {
	d := time.Duration(v * float64(time.Microsecond))
	switch {
	case d < time.Microsecond:
		return d.String()
	case d < time.Millisecond:
		return strconv.FormatFloat(v, 'f', 1, 64) + "µs"
	case d < time.Second:
		return strconv.FormatFloat(v/1e3, 'f', 2, 64) + "ms"
	}
	return strconv.FormatFloat(v/1e6, 'f', 2, 64) + "s"
}

func byteCount(n uint64) string {
	switch {
	case n < 1e3:
		return strconv.FormatUint(n, 10) + " B"
	case n < 1e6:
		return strconv.FormatFloat(float64(n)/1e3, 'f', 1, 64) + " kB"
	case n < 1e9:
		return strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64) + " MB"
	}
	return strconv.FormatFloat(float64(n)/1e9, 'f', 2, 64) + " GB"
}
