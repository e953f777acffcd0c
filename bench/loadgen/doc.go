// Package loadgen is the engine of the load tool, bench/cmd/loadgen: it
// drives a target address with requests of one Mode and measures
// throughput, latency, errors and bytes.
//
// Run takes a Config (zero values mean the documented defaults) and
// returns a Result. Each worker keeps its own counters and latency
// Histogram (log-linear, fixed memory, mergeable), which Run adds up at
// the end, so workers share nothing on the request path but an atomic
// ticket counter. HTTP/1 responses are parsed by hand from one reusable
// buffer per connection (status line, Content-Length, chunked bodies,
// Connection and Upgrade), so a request allocates nothing beyond its
// connection. The parser is strict where framing is at stake (RFC 9112):
// bare CR or LF line ends, a status outside 100-599, differing
// Content-Length values, Content-Length with Transfer-Encoding, a
// Transfer-Encoding list (over one or more lines) whose last coding is
// not chunked, and Transfer-Encoding in an HTTP/1.0 response are
// protocol errors. On Linux, unpaced runs of the HTTP/1 modes (http1,
// http1-keepalive and 426) use an epoll event loop per P instead of a
// goroutine per worker, as wrk does; see h1loop_linux.go for why.
//
// tcp mode streams: a request writes Size bytes (up to 1 TiB) from a
// per-worker pattern whose period, 1 MiB + 7, is not a power of two, at
// most 1 MiB at a time, and reads them back checking each piece at its
// offset, in constant memory; Timeout bounds the whole request. An echo
// that differs is a protocol error naming the first byte that does.
//
// # Errors by kind
//
// dial (connect or WebSocket handshake failed, or timed out), timeout (a
// deadline passed mid-request), reset (ECONNRESET, EPIPE), closed (the
// peer closed before the response was complete), bad_status (an HTTP
// status outside 200-399, or other than 426 in 426 mode), bad_header (426
// mode: Upgrade lacks a token, or Connection lacks upgrade or close),
// protocol (a malformed response or frame, or an echo that differs),
// other.
//
// # The end of a run
//
// When Duration passes, no further request starts, and those in flight
// are waited for, up to Drain (1 s): those that finish count as usual,
// whenever they finish. Those still in flight at the end of the drain,
// or when the caller's context ends, are interrupted and counted as
// unfinished, neither requests nor errors. elapsed_s is the later of
// Duration and the end of the last request or error counted: a request
// left unfinished does not stretch it (a run ended by Requests alone
// lasts until its last request ended; one that the caller's context
// stopped, until then). Drain applies only when Duration ends the run. In a paced run (Rate), the requests that fell due
// before the end but were never sent, because every worker was busy,
// are counted as missed: a target too slow for the rate shows there and
// in the latencies of the requests that were sent late, which count
// from when they were due. Rate is at most MaxRate (1e9 a second).
//
// # h2c retries
//
// A request that the server did not process, refused with
// REFUSED_STREAM or above a GOAWAY's last stream ID (RFC 9113 §8.7), is
// sent again, on a new connection after GOAWAY, while its timeout
// allows, at most 10 times; retries take the next streams before new
// requests do. One still unprocessed then is an error that says so
// (timeout if its time ran out, else reset or closed as the last
// attempt's). A server that sends GOAWAY every so many requests thus
// costs no errors.
//
// # JSON
//
// Result marshals to one object with these fields, which are stable:
//
//	mode                    the mode, e.g. "http1"
//	target                  the target as given
//	concurrency             requests in flight (h2c: connections)
//	streams                 requests in flight per connection (1 but for h2c)
//	rate_limit              requests/s asked for; 0 means unpaced
//	size                    body or message bytes, or tcp bytes streamed each way per request
//	elapsed_s               seconds the run lasted: the later of the duration and the last counted request's end
//	requests                requests that succeeded
//	requests_per_s          requests / elapsed_s
//	connections             connections opened
//	connections_per_s       connections / elapsed_s
//	errors                  failed requests
//	unfinished              requests in flight when the run stopped: not counted above
//	missed                  paced runs: requests due before the end but never sent
//	errors_by_kind          {"dial": n, "timeout": n, ...}: every kind, zeros too
//	error_samples           {"kind": "first message"} for the kinds that occurred; omitted if none
//	status                  {"200": n, ...}: HTTP status codes received; omitted if none
//	bytes_sent              bytes written, on the wire (headers, frames and bodies)
//	bytes_received          bytes read, likewise
//	sent_mb_per_s           bytes_sent / 10^6 / elapsed_s
//	received_mb_per_s       bytes_received / 10^6 / elapsed_s
//	latency_us              {"min", "mean", "p50", "p90", "p99", "p99_9", "max"} in µs
//	latency_relative_error  the bound on the percentiles' error (1/128)
//	connect_us              connection setup times, with the same fields as latency_us
//
// Latency runs from writing a request's first byte (from when it was
// due, in a paced run) to reading the whole response. Only successful
// requests are timed. A connection that a request opens (each request's,
// in the connection-per-request modes; the first of each connection's,
// in the others) is timed apart in connect_us: the TCP connect, and for
// ws the handshake, for h2c the wait for the server's SETTINGS. In h2c,
// the streams that wait while one of them opens their shared connection
// leave that wait out of their latency too, as they do a wait for a
// stream slot when the server's SETTINGS_MAX_CONCURRENT_STREAMS is below
// Streams: neither has sent a byte. In a paced run a request's latency
// still includes any connect or wait, as it includes any other wait
// after it was due.
package loadgen
